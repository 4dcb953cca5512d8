"""Read what a report shows: a run directory (metrics.jsonl, rollouts.jsonl) and result JSON files.

Result files are sorted by their "kind" ("eval" from `advgame eval`, "redteam" from `advgame redteam`);
a directory argument contributes every *.json file under it. Unreadable lines and files are skipped and
listed in `Report.skipped`, so one bad file does not hide the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Report:
    run_dir: Path | None
    metrics: list[dict] = field(default_factory=list)
    rollouts: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    redteams: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def read_jsonl(path: Path, skipped: list[str]) -> list[dict]:
    rows = []
    if not path.is_file():
        return rows
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            skipped.append(f"{path.name}:{k} (not JSON)")
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _result_files(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*.json") if not q.name.startswith("."))
        else:
            out.append(p)
    return out


def load_report(run_dir: Path | None, results: list[Path]) -> Report:
    report = Report(run_dir)
    if run_dir is not None:
        report.metrics = read_jsonl(run_dir / "metrics.jsonl", report.skipped)
        report.rollouts = read_jsonl(run_dir / "rollouts.jsonl", report.skipped)
        results = [*results, *(p for p in [run_dir / "eval"] if p.is_dir())]
    for path in _result_files(results):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            report.skipped.append(f"{path} (not a JSON file)")
            continue
        kind = data.get("kind") if isinstance(data, dict) else None
        problem = shape_problem(data) if kind in ("eval", "redteam") else None
        if problem:
            report.skipped.append(f"{path} ({kind} result of an unexpected shape: {problem})")
        elif kind == "eval":
            report.evals.append(data)
        elif kind == "redteam":
            report.redteams.append(data)
        else:
            report.skipped.append(f"{path} (no known 'kind')")
    return report


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _ci_ok(ci) -> bool:
    return ci is None or (isinstance(ci, list) and len(ci) == 2 and all(_is_num(v) for v in ci))


def shape_problem(data: dict) -> str | None:
    """Why a result dict cannot be drawn (a field of the wrong type), or None."""
    rows = [data] if data.get("kind") == "eval" else data.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return "'rows' is not a list of objects"
    numeric = (
        ("value", "n", "n_undecided")
        if data.get("kind") == "eval"
        else ("n", "successes", "n_undecided", "asr", "queries", "queries_per_success", "wall_s")
    )
    for r in rows:
        for key in numeric:
            if r.get(key) is not None and not _is_num(r[key]):
                return f"'{key}' is {type(r[key]).__name__}, not a number"
        if not _ci_ok(r.get("ci95")):
            return "'ci95' is not a pair of numbers"
        for key in ("model", "benchmark", "axis", "metric", "classifier", "attack"):
            if isinstance(r.get(key), (dict, list)):
                return f"'{key}' is {type(r[key]).__name__}, not text"
    return None


def series(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric, skipping steps where it is missing or null."""
    xs, ys = [], []
    for row in metrics:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and "step" in row:
            xs.append(row["step"])
            ys.append(float(value))
    return xs, ys


def example_attacks(rollouts: list[dict], limit: int = 6) -> list[dict]:
    """The latest step's harmful-split attacks: seed, the Attacker's rewrite, the Defender's answers with
    the judge's score and reward. Per seed, one rewrite: answered ones first, then Attacker rewrites before
    direct (seed-as-written) ones, then valid (status ok) ones."""
    train = [r for r in rollouts if r.get("split") == "harmful" and isinstance(r.get("rewrites"), list)]
    if not train:
        return []
    last = max(r.get("step", 0) for r in train)
    out = []
    for rec in (r for r in train if r.get("step", 0) == last):
        ranked = sorted(
            rec["rewrites"],
            key=lambda w: (not w.get("answers"), bool(w.get("direct")), w.get("status") != "ok"),
        )
        for rw in ranked:
            out.append(
                {
                    "step": last,
                    "seed": rec.get("seed"),
                    "rewrite": rw.get("prompt") or rw.get("raw"),
                    "status": rw.get("status"),
                    "direct": bool(rw.get("direct")),
                    "score": rw.get("score"),
                    "answers": rw.get("answers") or [],
                }
            )
            break  # one rewrite per seed keeps the examples varied
    return out[:limit]
