"""Wall-time breakdown of one game step of the CPU demo, and peak memory.

    .venv/bin/python bench/game_step.py [--steps 3] [KEY=VALUE ...]

Builds the `configs/cpu_demo.yaml` game (SmolLM2-135M Attacker and Defender with LoRA, heuristic judges),
runs one warm-up step, then `--steps` measured steps, and prints the median seconds per phase:
attacker generation, faithfulness judge, defender generation, judges, updates, EMA (both splits summed).
Writes bench/results/game_step.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advgame.config import load_config
from advgame.game.step import game_step
from advgame.train.setup import build_data, build_game

PHASES = ["attacker_generation", "faithfulness_judge", "defender_generation", "judges", "updates", "ema"]


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(ROOT / "configs" / "cpu_demo.yaml"))
    parser.add_argument("--steps", type=int, default=3, help="measured steps after one warm-up step")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "game_step.json"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)

    cfg = load_config(args.config, args.overrides)
    t0 = time.perf_counter()
    game = build_game(cfg)
    data = build_data(cfg)
    load_s = time.perf_counter() - t0
    runs = []
    for step in range(args.steps + 1):
        batches = {c: data.train[c].next_batch() for c in ("harmful", "benign")}
        t = time.perf_counter()
        metrics, _ = game_step(game, batches, step)
        total = time.perf_counter() - t
        if step > 0:  # the first step is a warm-up
            runs.append({**{p: metrics.get(f"time/{p}", 0.0) for p in PHASES}, "total": total})
    median = {k: statistics.median(r[k] for r in runs) for k in [*PHASES, "total"]}

    print(
        f"one game step of {Path(args.config).name} (both splits), median of {len(runs)} steps after a "
        "warm-up"
    )
    print(f"{'phase':<22}{'seconds':>10}{'share':>9}")
    for phase in PHASES:
        print(f"{phase:<22}{median[phase]:>10.3f}{median[phase] / median['total']:>9.0%}")
    print(f"{'total':<22}{median['total']:>10.2f}")
    print(
        f"model load {load_s:.1f} s; peak RSS {peak_rss_gib():.2f} GiB; torch "
        f"threads {torch.get_num_threads()}"
    )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "config": Path(args.config).name,
                "overrides": args.overrides,
                "steps_measured": len(runs),
                "median_seconds": median,
                "runs": runs,
                "load_seconds": load_s,
                "peak_rss_gib": peak_rss_gib(),
                "torch_threads": torch.get_num_threads(),
                "machine": platform.processor() or platform.machine(),
                "torch": torch.__version__,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
