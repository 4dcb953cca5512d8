"""Per-attack results of a red-team run: ASR with a 95% Wilson interval, cost, and the tables.

A behaviour counts once per attack (a unit): it is a success when any of its attempts succeeded, undecided
when every attempt was undecided (classifier or endpoint failure), and a failure otherwise. ASR is
successes / decided units; the interval is the Wilson score interval (well-behaved at the small n and the
0 or 1 rates of short CPU runs, and deterministic). Queries and wall time sum over all attempts;
queries per success = queries / successes (None without a success).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from advgame import __version__

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> list[float] | None:
    """The Wilson score interval of a binomial proportion; None when n == 0."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def unit_outcome(successes: Sequence[bool | None]) -> bool | None:
    if any(s is True for s in successes):
        return True
    if successes and all(s is None for s in successes):
        return None
    return False


def attack_row(attack: str, records: Sequence[dict], budget: dict) -> dict:
    units: dict[str, list] = {}
    for r in records:
        units.setdefault(r["behavior_id"], []).append(r.get("success"))
    outcomes = [unit_outcome(v) for v in units.values()]
    successes = sum(o is True for o in outcomes)
    undecided = sum(o is None for o in outcomes)
    decided = len(outcomes) - undecided
    queries = sum(int(r.get("queries") or 0) for r in records)
    return {
        "attack": attack,
        "n": len(outcomes),
        "successes": successes,
        "n_undecided": undecided,
        "asr": round(successes / decided, 4) if decided else None,
        "ci95": wilson(successes, decided),
        "queries": queries,
        "queries_per_success": round(queries / successes, 2) if successes else None,
        "wall_s": round(sum(float(r.get("elapsed_s") or 0) for r in records), 2),
        "budget": budget,
    }


def build_summary(
    records: Sequence[dict],
    budgets: dict[str, dict],
    *,
    target: str,
    classifier: str,
    behaviors: str,
    n_behaviors: int,
) -> dict:
    rows = [attack_row(a, [r for r in records if r["attack"] == a], b) for a, b in budgets.items()]
    return {
        "kind": "redteam",
        "advgame_version": __version__,
        "target": target,
        "classifier": classifier,
        "behaviors": behaviors,
        "n_behaviors": n_behaviors,
        "rows": rows,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _fmt(x, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.0f}%" if pct else (f"{x:g}" if isinstance(x, float) else str(x))


def table_rows(summary: dict) -> list[list[str]]:
    out = []
    for r in summary["rows"]:
        ci = r["ci95"]
        out.append(
            [
                r["attack"],
                f"{r['successes']}/{r['n'] - r['n_undecided']}",
                _fmt(r["asr"], pct=True),
                "-" if ci is None else f"[{100 * ci[0]:.0f}%, {100 * ci[1]:.0f}%]",
                str(r["n_undecided"]),
                str(r["queries"]),
                _fmt(r["queries_per_success"]),
                f"{r['wall_s']:.1f}",
            ]
        )
    return out


HEADERS = [
    "attack",
    "successes",
    "ASR",
    "95% CI (Wilson)",
    "undecided",
    "queries",
    "queries/success",
    "wall s",
]


def markdown_table(summary: dict) -> str:
    lines = [
        (
            f"Target `{summary['target']}`, behaviours `{summary['behaviors']}` "
            f"(n={summary['n_behaviors']}), classifier `{summary['classifier']}`."
        ),
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    return "\n".join(lines) + "\n"


def rich_table(summary: dict):
    from rich.table import Table

    table = Table(
        title=f"Red-team: {summary['target']} ({summary['behaviors']}, n={summary['n_behaviors']}, "
        f"{summary['classifier']})"
    )
    for h in HEADERS:
        table.add_column(h, justify="left" if h == "attack" else "right")
    for row in table_rows(summary):
        table.add_row(*row)
    return table
