"""HarmBench's behaviours file schema, read in one place for `advgame eval` and `advgame redteam`.

Upstream columns: Behavior, FunctionalCategory, SemanticCategory, Tags, ContextString, BehaviorID.
Behavior, FunctionalCategory, SemanticCategory and BehaviorID are required; ContextString (the text a
contextual behaviour refers to) is optional, since some exports of the standard behaviours omit it, and Tags
is not used. Rows are kept apart from any prompt format: eval merges the context into the prompt
(`contextual_prompt`), redteam hands it to the classifier separately.

A row with an empty BehaviorID gets `harmbench-<sha256 of behaviour and context, 12 hex>`: stable when rows
are added, removed or filtered, so answer caches and resumed red-team runs still match the row they recorded.
Rows with an empty Behavior are skipped. Two rows with the same id are refused (they would share one cache
entry). Problems raise `DataFileError` naming the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from advgame.eval.benchmarks.files import DataFileError, read_rows

REQUIRED_COLUMNS = ("Behavior", "FunctionalCategory", "SemanticCategory", "BehaviorID")


@dataclass(frozen=True)
class HarmBenchRow:
    id: str  # BehaviorID, or the content-derived fallback when the cell is empty
    behavior: str
    functional: str  # FunctionalCategory: standard, contextual, copyright (multimodal in the MM files)
    category: str  # SemanticCategory
    context: str | None = None  # ContextString, None when absent or empty


def fallback_id(behavior: str, context: str | None) -> str:
    """The id of a row whose BehaviorID is empty: derived from its content, not its position."""
    return "harmbench-" + hashlib.sha256(f"{behavior}\0{context or ''}".encode()).hexdigest()[:12]


def contextual_prompt(context: str, behavior: str) -> str:
    """A HarmBench contextual behaviour as asked: the context first, then the request."""
    return f"{context.strip()}\n\n---\n\n{behavior.strip()}"


def read_harmbench(path: Path, functional: Collection[str] | None = None) -> list[HarmBenchRow]:
    """The rows of a HarmBench behaviours file (any format `read_rows` reads), in file order, keeping only
    rows whose FunctionalCategory is in `functional` (None keeps all)."""
    rows = read_rows(path)
    if not rows:
        raise DataFileError(f"{path}: no rows (expected HarmBench's columns {', '.join(REQUIRED_COLUMNS)})")
    if not all(isinstance(r, dict) for r in rows):
        raise DataFileError(f"{path}: rows must be objects with named fields (HarmBench's columns)")
    missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
    if missing:
        found = ", ".join(str(c) for c in rows[0] if c is not None)
        raise DataFileError(
            f"{path}: not a HarmBench behaviours file, missing column(s) {', '.join(missing)}; "
            f"found {found or 'none'}"
        )
    wanted = None if functional is None else {f.strip() for f in functional}
    out, seen = [], set()
    for r in rows:
        kind, behavior = _cell(r, "FunctionalCategory"), _cell(r, "Behavior")
        if (wanted is not None and kind not in wanted) or not behavior:
            continue
        context = _cell(r, "ContextString") or None
        row_id = _cell(r, "BehaviorID") or fallback_id(behavior, context)
        if row_id in seen:
            raise DataFileError(
                f"{path}: BehaviorID {row_id!r} appears twice; ids must be unique (they key the "
                "answer cache and the red-team resume log)"
            )
        seen.add(row_id)
        out.append(HarmBenchRow(row_id, behavior, kind, _cell(r, "SemanticCategory"), context))
    return out


def _cell(row: dict, column: str) -> str:
    """A cell as stripped text; a short CSV row leaves trailing cells None, Parquet may give non-strings."""
    value = row.get(column)
    return "" if value is None else str(value).strip()
