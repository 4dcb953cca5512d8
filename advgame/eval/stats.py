"""Rates with 95% percentile-bootstrap confidence intervals, overall and per category.

A rate is computed over the *decided* items only: an item whose classifier could not decide (None) is
counted in `n_undecided` and reported, never folded into either side. The bootstrap resamples the
decided outcomes with replacement `resamples` times from a seeded NumPy generator, so the same outcomes
always give the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_RESAMPLES = 2000


def bootstrap_ci(
    outcomes: Sequence[bool | float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of `outcomes` (None when there are none)."""
    values = np.asarray(outcomes, dtype=float)
    if values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(resamples, values.size), replace=True).mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def summarise(
    outcomes: Sequence[bool | float | None], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> dict:
    """{"n", "n_decided", "n_undecided", "value", "ci95"} of outcomes (None = undecided)."""
    decided = [float(o) for o in outcomes if o is not None]
    value = sum(decided) / len(decided) if decided else None
    ci = bootstrap_ci(decided, resamples=resamples, seed=seed)
    return {
        "n": len(outcomes),
        "n_decided": len(decided),
        "n_undecided": len(outcomes) - len(decided),
        "value": value,
        "ci95": list(ci) if ci is not None else None,
    }


def by_category(
    outcomes: Sequence[bool | float | None],
    categories: Sequence[str | None],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, dict]:
    """`summarise` per category (items without a category go under 'uncategorised'), sorted by name."""
    groups: dict[str, list] = {}
    for outcome, cat in zip(outcomes, categories, strict=True):
        groups.setdefault(cat or "uncategorised", []).append(outcome)
    out = {}
    for cat in sorted(groups):
        s = summarise(groups[cat], resamples=resamples, seed=seed)
        out[cat] = {"n": s["n"], "n_undecided": s["n_undecided"], "value": s["value"], "ci95": s["ci95"]}
    return out
