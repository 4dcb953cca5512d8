"""attempts.jsonl: one JSON object per attempt, appended per (attack, behaviour) unit, resumable after a kill.

All attempts of a unit are written in one `write` + flush + fsync; the unit's last record carries
`"unit_done": true`. On reopening, a torn last line (a kill during the write) and the records of any unit
without its `unit_done` record are dropped, and the file is rewritten atomically (tmp + rename) to the
complete units only, so the rerun appends after clean lines and redoes only the unfinished units.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from advgame.atomic import write_text_atomic


class AttemptLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: list[dict] = []
        self.dropped = 0  # records of unfinished units (or torn lines) discarded on open
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        raw = self.path.read_text(encoding="utf-8")
        rows, pending, clean = [], {}, raw.endswith("\n") or not raw
        for line in raw.splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                self.dropped += 1
                clean = False
                continue
            key = (rec.get("attack"), rec.get("behavior_id"))
            pending.setdefault(key, []).append(rec)
            if rec.get("unit_done"):
                rows += pending.pop(key)
        self.dropped += sum(len(v) for v in pending.values())
        self.records = rows
        if self.dropped or not clean:
            write_text_atomic(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def done(self) -> set[tuple[str, str]]:
        """(attack, behaviour id) of every complete unit."""
        return {(r["attack"], r["behavior_id"]) for r in self.records if r.get("unit_done")}

    def append_unit(self, records: list[dict]) -> None:
        if not records:
            return
        records = [dict(r, unit_done=False) for r in records]
        records[-1]["unit_done"] = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            f.flush()
            os.fsync(f.fileno())
        self.records += records
