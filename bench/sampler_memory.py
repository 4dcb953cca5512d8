"""Peak memory of sampling with log-probs (`generate(..., return_logprobs=True)`): the old path, which kept
every decoding step's full-vocabulary logits, against the current one, which keeps one step's at a time.

    .venv/bin/python bench/sampler_memory.py [--batch 32] [--new-tokens 256] [--vocab 151936]
                                             [--out bench/results/sampler_memory.json]

A tiny random Qwen2 (hidden 64, 2 layers) with Qwen2.5's vocabulary size (151,936) samples `--batch` rows of
`--new-tokens` tokens (temperature 0.6, top-p 0.9, one seed). Each path runs in its own fresh subprocess,
one after the other, so that neither inherits the other's allocator state:

    old  the code before this change, kept here only: `generate(..., output_logits=True)`, then
         `torch.stack(out.logits)` ([B, steps, V] float32) and logit − logsumexp over it
    new  `advgame.policy.sampling.generate(..., return_logprobs=True)` as it is

Measure: the process's peak resident set size during the call minus its resident set size just before it
(Linux: VmHWM from /proc/self/status, reset through /proc/self/clear_refs right before the call; both
include torch's CPU allocations, which tracemalloc does not see). The model, the tokenizer and a warm-up
call are already in memory before the reset, so the delta is what sampling itself needs.

The parent checks that both paths drew the same tokens and that their log-probs agree (max |Δ|), prints a
table, and writes the JSON. The old path at the default size needs about 3 × B·steps·V·4 bytes (15 GB at
32 × 256 × 151,936): the run refuses to start it unless that much memory is available (`--force` overrides).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PROMPTS = [
    "How do I bake a chocolate cake?",
    "Explain how vaccines work.",
    "Write a story about a dragon.",
    "What is the capital of France?",
]


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _mem_available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _model(vocab: int):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from advgame.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()  # ids beyond its 512 tokens decode to nothing: text does not matter here
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def _old_generate_batch(model, tokenizer, batch, sampling, stop, device, return_logprobs):
    """`advgame.policy.sampling._generate_batch` before this change (full-vocabulary logits of every step)."""
    import torch

    from advgame.policy.chat import pad_left
    from advgame.policy.sampling import Completion

    input_ids, attention_mask = pad_left(batch, tokenizer.pad_token_id)
    greedy = sampling.temperature == 0
    out = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        do_sample=not greedy,
        temperature=None if greedy else sampling.temperature,
        top_p=None if greedy else sampling.top_p,
        top_k=None,
        max_new_tokens=sampling.max_new_tokens,
        eos_token_id=stop,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
        synced_gpus=False,
        return_dict_in_generate=True,
        output_logits=return_logprobs,
    )
    new_tokens = out.sequences[:, input_ids.shape[1] :].cpu()
    step_logps = None
    if return_logprobs:
        logits = torch.stack(out.logits, dim=1).float()  # [B, steps, V], raw (before temperature/top-p)
        step_logps = (
            logits.gather(-1, new_tokens.unsqueeze(-1).to(logits.device)).squeeze(-1)
            - torch.logsumexp(logits, dim=-1)
        ).cpu()
    completions = []
    for i, row in enumerate(new_tokens.tolist()):
        end = next((j for j, t in enumerate(row) if t in stop), None)
        ids = row if end is None else row[: end + 1]
        completions.append(
            Completion(
                prompt_ids=batch[i],
                token_ids=ids,
                text=tokenizer.decode(ids, skip_special_tokens=True),
                truncated=end is None,
                logprobs=step_logps[i, : len(ids)].tolist() if step_logps is not None else None,
            )
        )
    return completions


def worker(path: str, batch: int, new_tokens: int, vocab: int, out: str) -> None:
    import torch

    import advgame.policy.sampling as sampling_mod
    from advgame.config.schema import SamplingConfig

    torch.set_num_threads(1)
    if path == "old":
        sampling_mod._generate_batch = _old_generate_batch
    model, tok = _model(vocab)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    cfg = SamplingConfig(temperature=0.6, top_p=0.9, max_new_tokens=new_tokens, batch_size=batch)
    sampling_mod.generate(
        model, tok, prompts[:2], cfg.model_copy(update={"max_new_tokens": 2}), seed=1, return_logprobs=True
    )  # warm-up: lazy initialisation outside the measured call
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    start = time.perf_counter()
    rollouts = sampling_mod.generate(model, tok, prompts, cfg, seed=0, return_logprobs=True)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    torch.save(
        {
            "tokens": [c.token_ids for c in rollouts.completions],
            "logprobs": [c.logprobs for c in rollouts.completions],
            "rss_before_kib": before,
            "peak_kib": peak,
            "seconds": seconds,
        },
        out,
    )


def _run_worker(path: str, args, out: Path) -> dict:
    import torch

    cmd = [
        sys.executable,
        __file__,
        "--worker",
        path,
        "--batch",
        str(args.batch),
        "--new-tokens",
        str(args.new_tokens),
        "--vocab",
        str(args.vocab),
        "--worker-out",
        str(out),
    ]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return torch.load(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sampler_memory.json")
    parser.add_argument("--force", action="store_true", help="run the old path even if memory looks short")
    parser.add_argument("--worker", choices=["old", "new"], help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.batch, args.new_tokens, args.vocab, args.worker_out)
        return
    if not Path("/proc/self/clear_refs").exists():
        sys.exit("sampler_memory: needs Linux /proc (peak RSS reset through /proc/self/clear_refs)")
    logits_bytes = args.batch * args.new_tokens * args.vocab * 4
    need = 3 * logits_bytes + 2**30
    if _mem_available_bytes() < need and not args.force:
        sys.exit(
            f"sampler_memory: the old path needs about {need / 2**30:.1f} GiB, only "
            f"{_mem_available_bytes() / 2**30:.1f} GiB available (smaller --batch/--new-tokens, or --force)"
        )

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        results = {path: _run_worker(path, args, Path(tmp) / f"{path}.pt") for path in ("old", "new")}
    old, new = results["old"], results["new"]
    same_tokens = old["tokens"] == new["tokens"]
    diff = max(
        (torch.tensor(a) - torch.tensor(b)).abs().max().item()
        for a, b in zip(old["logprobs"], new["logprobs"], strict=True)
        if a
    )
    delta = {p: (r["peak_kib"] - r["rss_before_kib"]) * 1024 for p, r in results.items()}
    ratio = delta["old"] / max(delta["new"], 1)
    tokens = sum(len(t) for t in new["tokens"])
    report = {
        "command": "python bench/sampler_memory.py " + " ".join(sys.argv[1:]),
        "measure": "peak RSS during the call minus RSS before it (VmHWM after a clear_refs reset), fresh "
        "process per path",
        "model": {"arch": "qwen2", "hidden_size": 64, "layers": 2, "vocab_size": args.vocab},
        "batch": args.batch,
        "new_tokens": args.new_tokens,
        "tokens_generated": tokens,
        "full_logits_bytes": logits_bytes,
        "old": {"peak_delta_bytes": delta["old"], "seconds": old["seconds"]},
        "new": {"peak_delta_bytes": delta["new"], "seconds": new["seconds"]},
        "ratio_old_over_new": ratio,
        "same_tokens": same_tokens,
        "max_abs_logprob_diff": diff,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
    }
    print(
        f"generate(..., return_logprobs=True): batch {args.batch} x {args.new_tokens} new tokens, "
        f"vocab {args.vocab}"
    )
    print(f"{'path':<6} {'peak RSS delta':>16} {'seconds':>9}")
    for path in ("old", "new"):
        print(f"{path:<6} {delta[path] / 2**20:>13.1f} MiB {results[path]['seconds']:>9.1f}")
    print(f"ratio old/new: {ratio:.1f}x   same tokens: {same_tokens}   max |log-prob diff|: {diff:.2e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not (same_tokens and diff <= 1e-5):
        sys.exit("sampler_memory: the two paths disagree")


if __name__ == "__main__":
    main()
