"""`make demo`: load SmolLM2-135M-Instruct offline, answer a fixed prompt, and score the answer.

Shows the two policy operations the game is built on: batched sampling, and the summed log-probability
of a completion under the chat template (what DPO/IPO/GRPO consume).
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console

from advgame.config.schema import ModelConfig, SamplingConfig
from advgame.models.loading import load_model
from advgame.policy import completion_logprobs, generate

PROMPT = "In two sentences, why should a chemistry teacher explain lab safety before an experiment?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2", help="model path, hub id or alias (default: smollm2)")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args(argv)

    console = Console()
    t0 = time.perf_counter()
    with console.status(f"loading {args.model} (the first load converts the GGUF, ~20 s)…"):
        model, tokenizer = load_model(ModelConfig(path=args.model, finetune="full", device="cpu"))
    console.print(f"[dim]loaded {args.model} in {time.perf_counter() - t0:.1f} s[/dim]")

    sampling = SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens, batch_size=1)
    t0 = time.perf_counter()
    completion = generate(model, tokenizer, [args.prompt], sampling, seed=0).completions[0]
    gen_s = time.perf_counter() - t0
    with torch.no_grad():
        scored = completion_logprobs(model, [completion.prompt_ids], [completion.token_ids], tokenizer.pad_token_id)
    total, n = scored.sum.item(), int(scored.lengths.item())

    console.print(f"[bold]prompt:[/bold] {args.prompt}")
    console.print(f"[bold]answer:[/bold] {completion.text}")
    console.print(
        f"[bold]log π(answer | prompt):[/bold] {total:.2f} nats over {n} tokens "
        f"({total / max(n, 1):.3f} per token); truncated={completion.truncated}; "
        f"generated in {gen_s:.1f} s ({len(completion.token_ids) / gen_s:.1f} tok/s, greedy)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
