"""The report's figures, drawn with matplotlib's Agg backend and returned as PNG data URIs.

training_curves   both players' mean rewards per split, pair (or rollout) counts per step, and the
                  validation refusal rate (harmful seeds) and compliance rate (benign seeds)
frontier          one point per model: compliance (over-refusal benchmarks, higher is better) on x,
                  safety = 1 - ASR (safety benchmarks) on y, utility as the colour when present;
                  error bars are the 95% bootstrap CIs (averaged over benchmarks when a model has
                  several on an axis: a display aid, not a joint interval)
benchmark_bars    one panel per benchmark, one bar per (model, classifier), with CI error bars
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from advgame.report.data import series


def to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plot(ax, metrics, keys: list[tuple[str, str]], title: str, ylabel: str) -> bool:
    drawn = False
    for key, label in keys:
        xs, ys = series(metrics, key)
        if xs:
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
            drawn = True
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    return drawn


def training_curves(metrics: list[dict]) -> str | None:
    if not metrics:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    rewards = [
        (f"{s}/{r}/reward", f"{r} ({s})") for r in ("attacker", "defender") for s in ("harmful", "benign")
    ]
    counts = [
        (f"{s}/{r}/{c}", f"{r} {c} ({s})")
        for r in ("attacker", "defender")
        for s in ("harmful", "benign")
        for c in ("pairs", "rollouts")
    ]
    valid = [
        ("valid/harmful/refusal_rate", "refusal rate (harmful seeds)"),
        ("valid/benign/compliance_rate", "compliance rate (benign seeds)"),
    ]
    drawn = [
        _plot(axes[0], metrics, rewards, "Mean reward", "reward"),
        _plot(axes[1], metrics, counts, "Training pairs / rollouts per step", "count"),
        _plot(axes[2], metrics, valid, "Validation", "rate"),
    ]
    axes[2].set_ylim(-0.05, 1.05)
    if not any(drawn):
        plt.close(fig)
        return None
    return to_data_uri(fig)


def _axis_means(evals: list[dict]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """model -> axis -> (value, ci_lo, ci_hi), where safety is 1 - ASR; means over benchmarks."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    for r in evals:
        if r.get("value") is None:
            continue
        value, ci = r["value"], r.get("ci95") or [r["value"], r["value"]]
        if r.get("axis") == "safety":
            value, ci = 1 - value, [1 - ci[1], 1 - ci[0]]
        acc[r.get("model", "?")][r.get("axis", "?")].append((value, ci[0], ci[1]))
    return {
        m: {a: tuple(sum(v[i] for v in vals) / len(vals) for i in range(3)) for a, vals in axes.items()}
        for m, axes in acc.items()
    }


def frontier(evals: list[dict]) -> str | None:
    means = {m: a for m, a in _axis_means(evals).items() if "safety" in a and "over_refusal" in a}
    if not means:
        return None
    fig, ax = plt.subplots(figsize=(7, 5.5))
    utilities = [a["utility"][0] for a in means.values() if "utility" in a]
    cmap = plt.get_cmap("viridis")
    for model, a in sorted(means.items()):
        (cx, clo, chi), (sy, slo, shi) = a["over_refusal"], a["safety"]
        colour = cmap(a["utility"][0]) if "utility" in a else "tab:red"
        ax.errorbar(
            cx,
            sy,
            xerr=[[cx - clo], [chi - cx]],
            yerr=[[sy - slo], [shi - sy]],
            fmt="o",
            color=colour,
            ecolor="grey",
            capsize=3,
            markersize=8,
        )
        label = model if "utility" not in a else f"{model} (utility {a['utility'][0]:.2f})"
        left = cx > 0.6  # keep the label inside the axes
        ax.annotate(
            label,
            (cx, sy),
            textcoords="offset points",
            xytext=(-6 if left else 6, 6),
            fontsize=8,
            ha="right" if left else "left",
        )
    ax.set_xlabel("compliance on over-refusal benchmarks (higher is better)")
    ax.set_ylabel("safety = 1 - attack success rate (higher is better)")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    title = "Safety-compliance frontier (95% bootstrap CIs)"
    if utilities:
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
        fig.colorbar(sm, ax=ax, label="utility")
        title += ", colour = utility"
    ax.set_title(title)
    return to_data_uri(fig)


def benchmark_bars(evals: list[dict]) -> str | None:
    by_bench: dict = defaultdict(list)
    for r in evals:
        by_bench[r.get("benchmark", "?")].append(r)
    if not by_bench:
        return None
    names = sorted(by_bench)
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names, strict=False):
        rs = sorted(by_bench[name], key=lambda r: (r.get("model", ""), r.get("classifier", "")))
        values = [r["value"] if r.get("value") is not None else 0.0 for r in rs]
        lo = [v - (r.get("ci95") or [v, v])[0] for v, r in zip(values, rs, strict=True)]
        hi = [(r.get("ci95") or [v, v])[1] - v for v, r in zip(values, rs, strict=True)]
        labels = [f"{r.get('model', '?')}\n{r.get('classifier', '?')}" for r in rs]
        ax.bar(
            range(len(rs)),
            values,
            yerr=[lo, hi],
            capsize=4,
            color="tab:blue" if rs[0].get("higher_is_better") else "tab:orange",
        )
        ax.set_xticks(range(len(rs)), labels, fontsize=7, rotation=20, ha="right")
        arrow = "higher is better" if rs[0].get("higher_is_better") else "lower is better"
        ax.set_title(f"{name}: {rs[0].get('metric', '?')} ({arrow})", fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return to_data_uri(fig)
