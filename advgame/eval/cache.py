"""Per-item caches in JSONL, so that a killed eval continues where it stopped.

Each line is one finished item: {"key": ..., "fp": fingerprint, ...payload}. `fp` fingerprints what the
line depends on (model and decoding for answers; classifier and answer for verdicts); lines with another
fingerprint are ignored, so changing settings never reuses stale answers. Lines are appended and flushed
one batch at a time; a line cut short by a kill is skipped when read back.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def fingerprint(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class JsonlCache:
    def __init__(self, path: Path, fp: str):
        self.path = Path(path)
        self.fp = fp
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                if isinstance(record, dict) and record.get("fp") == fp and "key" in record:
                    self.entries[record["key"]] = record

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def add(self, records: list[dict]) -> None:
        """Append records (each with a "key"), flushed and synced to disk before returning."""
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for r in records:
                r = {**r, "fp": self.fp}
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
                self.entries[r["key"]] = r
            f.flush()
            os.fsync(f.fileno())
