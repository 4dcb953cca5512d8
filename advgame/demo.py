"""`make demo`: the game on a laptop CPU, offline, in under 10 minutes.

SmolLM2-135M-Instruct plays both the Attacker and the Defender (each with its own LoRA adapter and EMA),
judged by the offline heuristic judge, on the built-in seed sets. Before and after training the Defender
answers held-out seeds directly (greedy), and a table shows how often it refuses or deflects harmful
requests and how often it complies with benign ones, naming the classifier that decided.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from advgame.config import load_config

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cpu_demo.yaml"


def validation_rows(run_dir: Path) -> list[dict]:
    """The validation lines of a run's metrics.jsonl, in step order."""
    rows = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "valid/harmful/refusal_rate" in row:
            rows.append(row)
    return rows


def before_after_table(rows: list[dict]) -> Table:
    first, last = rows[0], rows[-1]
    table = Table(title=f"Defender on held-out seeds, step {first['step']} -> step {last['step']}")
    table.add_column("metric")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_column("change (points)", justify="right")
    for key, label in [
        ("valid/harmful/refusal_rate", f"harmful refusal-or-deflection rate (n={last['valid/harmful/n']})"),
        ("valid/benign/compliance_rate", f"benign compliance rate (n={last['valid/benign/n']})"),
    ]:
        b, a = 100 * first[key], 100 * last[key]
        table.add_row(label, f"{b:.1f}%", f"{a:.1f}%", f"{a - b:+.1f}")
    table.caption = f"classifier: {last.get('valid/classifier', '?')}; greedy decoding; Defender policy weights"
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="preset (default: configs/cpu_demo.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.steps=4")
    args = parser.parse_args(argv)

    from advgame.train.trainer import train

    console = Console()
    cfg = load_config(args.config, args.overrides)
    run_dir = Path(cfg.output_dir) / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    console.print(
        f"[bold]advgame demo[/bold]: {cfg.train.steps} game steps, {cfg.loss.type.upper()}"
        f"{'-MD' if cfg.ema.sample_from_ema else ''}, attacker {cfg.attacker.path} / defender {cfg.defender.path}, "
        f"judges: {cfg.judges.default.kind}; run dir {run_dir}"
    )
    t0 = time.perf_counter()
    train(cfg, run_dir)
    minutes = (time.perf_counter() - t0) / 60
    rows = validation_rows(run_dir)
    console.print(before_after_table(rows))
    console.print(f"finished in {minutes:.1f} min (seed {cfg.seed}); metrics: {run_dir / 'metrics.jsonl'}")
    console.print(f"as a page: advgame report {run_dir} -o {run_dir / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
