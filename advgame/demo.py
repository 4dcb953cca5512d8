"""`make demo`: the game on a laptop CPU, offline, in under 10 minutes.

SmolLM2-135M-Instruct plays both the Attacker and the Defender (each with its own LoRA adapter and EMA),
judged by the offline heuristic judge, on the built-in seed sets. The Defender is warm-started first (a
short supervised pass, cached; see `advgame/warm_start.py`), because the raw model never refuses. Before
and after the game the Defender answers held-out seeds directly (greedy), and a table shows, with 95%
bootstrap intervals: how often it refuses or deflects harmful requests, how often it complies with benign
ones, their mean (the balanced score), the fluency of its answers (per-token NLL under the warm-started
weights), and the classifier that decided.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from advgame.config import load_config
from advgame.game.validation import summarise_validation

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cpu_demo.yaml"
ROWS = (
    ("harmful_refusal", "harmful refusal-or-deflection rate", True),
    ("benign_compliance", "benign compliance rate", True),
    ("balanced", "balanced score (mean of the two)", True),
    ("fluency_nll", "fluency: NLL per token under θ₀ (lower is more fluent)", False),
)


def validation_summaries(run_dir: Path) -> dict[int, dict]:
    """Step -> `summarise_validation` of that step's validation records (rollouts.jsonl)."""
    by_step: dict[int, list[dict]] = {}
    for line in (run_dir / "rollouts.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("split") == "valid":
            by_step.setdefault(int(record["step"]), []).append(record)
    return {step: summarise_validation(records) for step, records in sorted(by_step.items())}


def classifier_name(run_dir: Path) -> str:
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "valid/classifier" in row:
            return row["valid/classifier"]
    return "?"


def _cell(s: dict, percent: bool) -> str:
    if s["value"] is None:
        return "-"
    k, fmt = (100, "{:.1f}%") if percent else (1, "{:.2f}")
    lo, hi = s["ci95"]
    return f"{fmt.format(k * s['value'])} [{fmt.format(k * lo)}, {fmt.format(k * hi)}]".replace(
        "%]", "]"
    ).replace("% [", " [")


def before_after_table(summaries: dict[int, dict], classifier: str) -> Table:
    first, last = min(summaries), max(summaries)
    before, after = summaries[first], summaries[last]
    n = {c: after[k]["n"] for c, k in (("harmful", "harmful_refusal"), ("benign", "benign_compliance"))}
    table = Table(
        title=f"Defender on held-out seeds: after the warm start (step {first}) -> after the game "
        f"(step {last})"
    )
    table.add_column("metric")
    table.add_column("warm start [95% CI]", justify="right")
    table.add_column("after the game [95% CI]", justify="right")
    table.add_column("change", justify="right")
    for key, label, percent in ROWS:
        b, a = before[key], after[key]
        change = (
            "-"
            if a["value"] is None or b["value"] is None
            else (
                f"{100 * (a['value'] - b['value']):+.1f} points"
                if percent
                else f"{a['value'] - b['value']:+.2f} nats"
            )
        )
        table.add_row(label, _cell(b, percent), _cell(a, percent), change)
    table.caption = (
        f"n = {n['harmful']} harmful + {n['benign']} benign held-out seeds, one greedy answer each; "
        f"refusals decided by {classifier}; intervals: percentile bootstrap"
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="preset (default: configs/cpu_demo.yaml)"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.steps=4"
    )
    args = parser.parse_args(argv)

    from advgame.train.trainer import train

    console = Console()
    cfg = load_config(args.config, args.overrides)
    run_dir = Path(cfg.output_dir) / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    console.print(
        "[bold]advgame demo[/bold]: "
        f"{'warm start, then ' if cfg.warm_start.enabled else ''}{cfg.train.steps} "
        f"game steps, {cfg.loss.type.upper()}{'-MD' if cfg.ema.sample_from_ema else ''}, attacker "
        f"{cfg.attacker.path} / defender {cfg.defender.path}, judges: {cfg.judges.default.kind}; "
        f"run dir {run_dir}"
    )
    t0 = time.perf_counter()
    train(cfg, run_dir)
    minutes = (time.perf_counter() - t0) / 60
    console.print(before_after_table(validation_summaries(run_dir), classifier_name(run_dir)))
    console.print(f"finished in {minutes:.1f} min (seed {cfg.seed}); metrics: {run_dir / 'metrics.jsonl'}")
    console.print(
        "what this shows and does not: docs/learning.md; over 3 seeds, with a control: bench/learning.py"
    )
    console.print(f"as a page: advgame report {run_dir} -o {run_dir / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
