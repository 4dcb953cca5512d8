"""Result files (kind "eval", see the shared schema) and the summary tables (rich and Markdown)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from rich.table import Table

from advgame import __version__
from advgame.eval.stats import by_category, summarise


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def eval_result(
    *,
    model: str,
    benchmark,
    classifier: str,
    decoding: dict,
    source: dict,
    outcomes: list,
    categories: list,
    seed: int = 0,
    resamples: int = 2000,
    extra: dict | None = None,
) -> dict:
    """One result dict: value and 95% bootstrap CI over decided items, per-category breakdown, undecided."""
    overall = summarise(outcomes, resamples=resamples, seed=seed)
    return {
        "kind": "eval",
        "advgame_version": __version__,
        "model": model,
        "benchmark": benchmark.name,
        "axis": benchmark.axis,
        "metric": benchmark.metric,
        "higher_is_better": benchmark.higher_is_better,
        "classifier": classifier,
        "decoding": decoding,
        "source": source,
        **overall,
        "by_category": by_category(outcomes, categories, resamples=resamples, seed=seed),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **(extra or {}),
    }


def result_filename(result: dict) -> str:
    return f"{slug(result['benchmark'])}__{slug(result['classifier'])}.json"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ci(ci: list | None) -> str:
    return "-" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


_HEADERS = ("model", "benchmark", "axis", "metric", "classifier", "n", "undecided", "value", "95% CI")


def _row(r: dict) -> list[str]:
    arrow = "↑" if r["higher_is_better"] else "↓"
    return [
        r["model"],
        r["benchmark"],
        r["axis"],
        f"{r['metric']} {arrow}",
        r["classifier"],
        str(r["n"]),
        str(r["n_undecided"]),
        _fmt(r["value"]),
        _ci(r["ci95"]),
    ]


def rich_table(results: list[dict]) -> Table:
    table = Table(title="advgame eval")
    for h in _HEADERS:
        table.add_column(h, justify="right" if h in ("n", "undecided", "value") else "left")
    for r in results:
        table.add_row(*_row(r))
    return table


_DISAGREE_HEADERS = (
    "benchmark",
    "string matcher",
    "other classifier",
    "both decided",
    "disagree",
    "rate",
    "string only",
    "other only",
)


def disagreement_rows(results: list[dict]) -> list[list[str]]:
    """One row per (benchmark, string matcher, model classifier) pair with a `refusal_disagreement` entry."""
    rows = []
    for r in results:
        if r["classifier"].split("@")[0] != "refusal-string":
            continue
        for other, d in sorted((r.get("refusal_disagreement") or {}).items()):
            rows.append(
                [
                    r["benchmark"],
                    r["classifier"],
                    other,
                    str(d["n"]),
                    str(d["disagree"]),
                    _fmt(d["rate"]),
                    str(d["string_only"]),
                    str(d["other_only"]),
                ]
            )
    return rows


def rich_disagreement_table(results: list[dict]) -> Table | None:
    rows = disagreement_rows(results)
    if not rows:
        return None
    table = Table(title="refusal verdicts: string matcher vs model classifier")
    for h in _DISAGREE_HEADERS:
        table.add_column(h, justify="left" if h in _DISAGREE_HEADERS[:3] else "right")
    for row in rows:
        table.add_row(*row)
    return table


def markdown_table(results: list[dict]) -> str:
    lines = ["| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _row(r)) + " |" for r in results]
    rows = disagreement_rows(results)
    if rows:
        lines += [
            "",
            "Refusal verdicts, string matcher vs model classifier (items both decided):",
            "",
            "| " + " | ".join(_DISAGREE_HEADERS) + " |",
            "|" + "---|" * len(_DISAGREE_HEADERS),
        ]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
