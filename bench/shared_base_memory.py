"""Memory of the two players: separate models vs one shared frozen base with two LoRA adapters.

    .venv/bin/python bench/shared_base_memory.py [--config configs/cpu_demo.yaml] [KEY=VALUE ...]

Each mode runs in its own subprocess, builds both players from the config (the CPU demo: SmolLM2-135M,
LoRA), takes one optimiser step per player on a dummy batch (so AdamW's moments exist), and reports the
bytes of distinct parameter storage and the peak RSS (CPU) or peak CUDA memory. Prints a table with the
ratio and writes bench/results/shared_base_memory.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advgame.config import load_config
from advgame.models.shared_base import model_bytes
from advgame.train.setup import build_players


def measure(config: str, overrides: list[str], shared: bool) -> dict:
    cfg = load_config(config, [*overrides, f"shared_base={str(shared).lower()}"])
    players = build_players(cfg)
    for p in players:
        device = next(p.model.parameters()).device
        ids = torch.arange(5, 69, device=device).unsqueeze(0)
        out = p.model(input_ids=ids, attention_mask=torch.ones_like(ids))
        out.logits.float().pow(2).mean().backward()
        p.optimizer.step()
        p.optimizer.zero_grad(set_to_none=True)
    cuda = torch.cuda.is_available() and device.type == "cuda"
    peak = (
        torch.cuda.max_memory_allocated()
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    banks = sum(b.num_bytes() for p in players for b in (p.ema, p.initial) if b is not None)
    return {
        "shared_base": shared,
        "param_bytes": model_bytes([p.model for p in players]),
        "bank_bytes": banks,
        "peak_bytes": peak,
        "peak_kind": "cuda_max_allocated" if cuda else "rss",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(ROOT / "configs" / "cpu_demo.yaml"))
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "shared_base_memory.json"))
    parser.add_argument("--child", choices=["separate", "shared"], help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.config, args.overrides, args.child == "shared")))
        return 0
    rows = []
    for mode in ("separate", "shared"):
        out = subprocess.run(
            [sys.executable, __file__, "--config", args.config, "--child", mode, *args.overrides],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    sep, sh = rows
    print(f"{'mode':10} {'params MiB':>11} {'EMA+init MiB':>13} {'peak MiB':>9}")
    for r in rows:
        mode = "shared" if r["shared_base"] else "separate"
        print(
            f"{mode:10} {r['param_bytes'] / 2**20:11.1f} {r['bank_bytes'] / 2**20:13.2f} "
            f"{r['peak_bytes'] / 2**20:9.1f}"
        )
    ratio = {
        "param_bytes": sh["param_bytes"] / sep["param_bytes"],
        "peak_bytes": sh["peak_bytes"] / sep["peak_bytes"],
    }
    print(
        f"shared / separate: params {ratio['param_bytes']:.3f}, peak {ratio['peak_bytes']:.3f} "
        f"({sep['peak_kind']})"
    )
    result = {
        "config": Path(args.config).name,
        "overrides": args.overrides,
        "rows": rows,
        "ratio_shared_over_separate": ratio,
        "machine": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
