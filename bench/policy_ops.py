"""Throughput of advgame's policy operations on SmolLM2-135M-Instruct, and of our DPO step against TRL's.

    .venv/bin/python bench/policy_ops.py [--out bench/results/policy_ops.json] [--quick]

Three measurements, printed as a `rich` table and written as JSON together with the machine's description:

  (a) sampling (`advgame.policy.generate`, temperature 0.6, top-p 0.9) at batch 1 and at batch 16, in
      generated tokens per second; only tokens actually produced count (up to and including the end-of-turn
      token), not the padding of rows that finished early. One warm-up call first.
  (b) one DPO step of ours on 8 preference pairs: a policy forward with gradients through
      `completion_logprobs` on chosen and rejected concatenated into one batch of 16, the reference forward
      under no_grad, `dpo_loss(...).mean().backward()`.
  (c) the same step through TRL's `DPOTrainer` loss path (`_compute_loss` + backward) on the same pairs, the
      same policy and the same reference. TRL tokenises the pairs and collates them (right padding); ours runs
      on exactly those token sequences, split back into prompt and completion by TRL's `completion_mask`.
      The two loss values (and gradients) are checked to agree.

Step throughput = non-padding tokens of the policy forward (prompt + completion, all 16 rows) / step time,
the median over a few repeats after a warm-up; our and TRL's repeats are interleaved. The reference is a
frozen copy of the policy with small noise added to its weights, so that the loss is not trivially log 2.

CPU timings on a shared machine are only as good as the machine is quiet: with several torch threads, one
descheduled thread stalls every barrier, and a step can take 10-30x longer. So each timed repeat first waits
(a bounded time) until no other process has been runnable for a second, records the mean number of other
runnable tasks while it ran ("other load", from /proc), and is re-run when that exceeds 0.5 (bounded too, see
`Patience`). The JSON keeps every kept repeat's load and a `contended` flag; the table prints a warning.

`--quick` shrinks every size and skips the waiting (smoke test, well under a minute).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from rich.console import Console
from rich.table import Table

from advgame.config.schema import ModelConfig, SamplingConfig
from advgame.losses import dpo_loss
from advgame.models.loading import load_model
from advgame.policy import completion_logprobs, generate
from advgame.trl_compat import split_trl_batch

BETA = 0.1
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "policy_ops.json"

GEN_PROMPTS = [
    "Write a detailed guide to baking sourdough bread at home.",
    "Explain how vaccines train the immune system, step by step.",
    "Describe the water cycle to a ten-year-old in several paragraphs.",
    "What are the main causes of the French Revolution? Answer at length.",
    "Give me a week-long beginner running plan with explanations.",
    "Explain the difference between TCP and UDP with examples.",
    "Write a short story about a lighthouse keeper and a storm.",
    "How does a refrigerator work? Explain the physics.",
    "List ten tips for writing clear technical documentation, with reasons.",
    "Explain photosynthesis, including the light and dark reactions.",
    "Describe how to plan a vegetable garden for a small backyard.",
    "What is compound interest? Explain with a worked example.",
    "Summarise the plot of a classic adventure novel of your choice.",
    "How do airplanes stay in the air? Explain lift in detail.",
    "Write a polite email asking a colleague for feedback on a report.",
    "Explain how a hash table works and when to use one.",
]

_WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "question",
    "safe",
    "helpful",
    "user",
    "request",
    "because",
    "however",
    "system",
    "data",
    "paper",
    "careful",
    "explain",
    "step",
    "result",
    "policy",
    "reward",
    "attack",
    "defend",
    "prompt",
    "story",
    "garden",
    "river",
    "mountain",
    "city",
    "history",
    "science",
    "energy",
    "water",
    "light",
    "simple",
    "complex",
    "reason",
    "example",
    "detail",
    "general",
    "specific",
    "people",
    "time",
    "year",
    "work",
    "world",
    "information",
    "which",
    "would",
    "should",
    "could",
    "first",
    "second",
    "finally",
    "also",
    "never",
]


# ----------------------------------------------------------------------------------------------- helpers


def machine_info() -> dict:
    """What the numbers depend on: cores, threads, CPU model, library versions."""
    import transformers
    import trl

    cpu_model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "usable_cores": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
    }


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def text_of_about(tokenizer, rng: random.Random, n_tokens: int) -> str:
    """Pseudo-random English-word text of about `n_tokens` tokens (first length >= n_tokens)."""
    words: list[str] = []
    while len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]) < n_tokens:
        words.append(rng.choice(_WORDS))
    return " ".join(words).capitalize() + "."


class LoadMonitor:
    """Samples, every `interval` s, how many runnable tasks on the machine are not this process's own.

    A shared machine (another job on the same cores) makes CPU timings meaningless, especially with several
    torch threads, whose barriers stall whenever one thread is descheduled. Each measurement records the mean
    number of such foreign runnable tasks, so a contended number can be recognised (and re-measured) later.
    Linux only (/proc); elsewhere the load reads as None.
    """

    def __init__(self, interval: float = 0.2):
        self.available = Path("/proc/stat").is_file() and Path("/proc/self/task").is_dir()
        self.interval = interval
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _foreign_running() -> int:
        with open("/proc/stat") as f:
            running = next(int(line.split()[1]) for line in f if line.startswith("procs_running"))
        own = 0
        for task in Path("/proc/self/task").iterdir():
            try:
                own += (task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                pass  # the thread ended meanwhile
        return max(running - own, 0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._samples.append(self._foreign_running())

    def start(self) -> None:
        if self.available and not self._thread.is_alive():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @contextmanager
    def window(self):
        """`with monitor.window() as w:` … then `w["load"]`: mean foreign runnable tasks inside the block."""
        out: dict[str, float | None] = {"load": None}
        start = len(self._samples)
        try:
            yield out
        finally:
            samples = self._samples[start:]
            if self.available and samples:
                out["load"] = round(sum(samples) / len(samples), 2)

    def wait_quiet(self, quiet_for: float = 1.0, max_wait: float = 30.0) -> None:
        """Block until no foreign task has been runnable for `quiet_for` seconds (at most `max_wait`)."""
        if not self.available:
            return
        deadline, quiet_since = time.monotonic() + max_wait, time.monotonic()
        while time.monotonic() < deadline:
            if self._foreign_running():
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_for:
                return
            time.sleep(self.interval / 2)


MONITOR = LoadMonitor()
QUIET_LOAD = 0.5  # a repeat whose mean foreign load exceeds this is contended


@dataclass
class Patience:
    """How much extra wall time a run may spend on a shared machine, waiting for quiet and re-running."""

    retries: int = 2  # re-runs of one contended repeat
    max_wait: float = 30.0  # seconds to wait for quiet before one attempt
    budget: float = 180.0  # extra seconds (waits + discarded attempts) for the whole run
    spent: float = 0.0

    def left(self) -> float:
        return max(self.budget - self.spent, 0.0)


def timed(fn, patience: Patience):
    """(seconds, foreign load, discarded attempts, fn's result) of one timed call of `fn`.

    Waits for the machine to be quiet first, and re-runs the call when other processes competed for the CPUs
    during it, within `patience`; the last attempt is kept whatever its load, and its load is recorded.
    """
    attempt = 0
    while True:
        waited = time.monotonic()
        MONITOR.wait_quiet(max_wait=min(patience.max_wait, patience.left()))
        patience.spent += time.monotonic() - waited
        with MONITOR.window() as window:
            start = time.perf_counter()
            result = fn()
            seconds = time.perf_counter() - start
        load = window["load"]
        if load is None or load <= QUIET_LOAD or attempt >= patience.retries or patience.left() <= 0:
            return seconds, load, attempt, result
        patience.spent += seconds
        attempt += 1


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]


# ----------------------------------------------------------------------------------------------- (a) sampling


def bench_generation(
    model, tokenizer, batch: int, max_new_tokens: int, repeats: int, patience: Patience
) -> dict:
    """Generated tokens per second at one batch size: one warm-up call, then `repeats` timed calls."""
    sampling = SamplingConfig(temperature=0.6, top_p=0.9, max_new_tokens=max_new_tokens, batch_size=batch)
    prompts_of = [
        [GEN_PROMPTS[(r * batch + i) % len(GEN_PROMPTS)] for i in range(batch)] for r in range(repeats + 1)
    ]
    generate(model, tokenizer, prompts_of[0], sampling, seed=0)  # warm-up
    tokens, seconds, loads, discarded, truncated = [], [], [], 0, 0
    for r in range(1, repeats + 1):
        dt, load, retried, rollouts = timed(
            lambda r=r: generate(model, tokenizer, prompts_of[r], sampling, seed=r), patience
        )
        seconds.append(dt)
        loads.append(load)
        discarded += retried
        tokens.append(sum(len(c.token_ids) for c in rollouts.completions))
        truncated += sum(rollouts.truncated)
    rates = [t / s for t, s in zip(tokens, seconds)]
    return {
        "batch": batch,
        "max_new_tokens": max_new_tokens,
        "repeats": repeats,
        "tokens": tokens,
        "seconds": [round(s, 4) for s in seconds],
        "foreign_load": loads,
        "discarded_contended": discarded,
        "truncated_fraction": truncated / (batch * repeats),
        "tokens_per_s": statistics.median(rates),
        "tokens_per_s_best": max(rates),
    }


# -------------------------------------------------------------------------------------------- (b, c) DPO step


def preference_pairs(
    tokenizer, n_pairs: int, prompt_tokens: tuple[int, int], completion_tokens: tuple[int, int]
):
    """`n_pairs` conversational (prompt, chosen, rejected) examples; lengths drawn uniformly in the given
    ranges (user message and assistant message token counts, before the chat template)."""
    rng = random.Random(0)
    examples = []
    for _ in range(n_pairs):
        examples.append(
            {
                "prompt": [
                    {"role": "user", "content": text_of_about(tokenizer, rng, rng.randint(*prompt_tokens))}
                ],
                "chosen": [
                    {
                        "role": "assistant",
                        "content": text_of_about(tokenizer, rng, rng.randint(*completion_tokens)),
                    }
                ],
                "rejected": [
                    {
                        "role": "assistant",
                        "content": text_of_about(tokenizer, rng, rng.randint(*completion_tokens)),
                    }
                ],
            }
        )
    return examples


def build_trl(policy, ref, tokenizer, examples, output_dir: str):
    """A DPOTrainer (sigmoid loss, β = 0.1) and one batch of all `examples`, tokenised and collated by TRL."""
    import datasets
    import trl

    datasets.disable_progress_bars()
    args = trl.DPOConfig(
        output_dir=output_dir,
        loss_type=["sigmoid"],
        beta=BETA,
        report_to=[],
        use_cpu=next(policy.parameters()).device.type == "cpu",
        bf16=False,
        max_length=None,
        per_device_train_batch_size=len(examples),
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    dataset = datasets.Dataset.from_list(examples)
    trainer = trl.DPOTrainer(
        model=policy, ref_model=ref, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(examples))])
    device = next(policy.parameters()).device
    return trainer, {k: v.to(device) for k, v in inputs.items()}


def bench_dpo_step(
    model, tokenizer, n_pairs, prompt_tokens, completion_tokens, repeats, patience, ref_noise
) -> dict:
    """Our DPO step vs TRL's on the same sequences, models and reference; timings and agreement."""
    policy = model.train()
    ref = copy.deepcopy(model).requires_grad_(False).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(ref_noise * p.std() * torch.randn(p.shape, generator=gen).to(p.device))

    examples = preference_pairs(tokenizer, n_pairs, prompt_tokens, completion_tokens)
    with tempfile.TemporaryDirectory() as output_dir:
        trainer, inputs = build_trl(policy, ref, tokenizer, examples, output_dir)
    prompts, completions = split_trl_batch(inputs)
    pad_id = tokenizer.pad_token_id
    n_tokens = int(inputs["attention_mask"].sum())

    def ours() -> float:
        policy.zero_grad(set_to_none=True)
        pol = completion_logprobs(policy, prompts, completions, pad_id)
        with torch.no_grad():
            rf = completion_logprobs(ref, prompts, completions, pad_id)
        loss = dpo_loss(*pol.sum.chunk(2), *rf.sum.chunk(2), BETA).mean()
        loss.backward()
        return loss.item()

    def theirs() -> float:
        policy.zero_grad(set_to_none=True)
        loss = trainer._compute_loss(policy, inputs, return_outputs=False)
        loss.backward()
        return loss.item()

    # Warm-up, which doubles as the agreement check (losses and gradients of the very same step).
    loss_ours = ours()
    grads_ours = _grads(policy)
    loss_trl = theirs()
    grads_trl = _grads(policy)
    grad_diff = max((a - b).abs().max().item() for a, b in zip(grads_ours, grads_trl, strict=True))
    grad_scale = max(g.abs().max().item() for g in grads_trl)
    del grads_ours, grads_trl

    times: dict[str, list[float]] = {"ours": [], "trl": []}
    loads: dict[str, list[float | None]] = {"ours": [], "trl": []}
    discarded = {"ours": 0, "trl": 0}
    for _ in range(repeats):  # interleaved, so that drifts in machine speed hit both alike
        for name, step in (("ours", ours), ("trl", theirs)):
            dt, load, retried, _ = timed(step, patience)
            times[name].append(dt)
            loads[name].append(load)
            discarded[name] += retried
    policy.zero_grad(set_to_none=True)

    def summary(name: str) -> dict:
        median = statistics.median(times[name])
        return {
            "seconds": [round(t, 4) for t in times[name]],
            "foreign_load": loads[name],
            "discarded_contended": discarded[name],
            "seconds_median": median,
            "tokens_per_s": n_tokens / median,
            "tokens_per_s_best": n_tokens / min(times[name]),
        }

    result = {
        "pairs": n_pairs,
        "rows": 2 * n_pairs,
        "tokens": n_tokens,
        "prompt_lengths": [len(p) for p in prompts[:n_pairs]],
        "completion_lengths": [len(c) for c in completions],
        "repeats": repeats,
        "ref_noise": ref_noise,
        "ours": summary("ours"),
        "trl": summary("trl"),
        "loss_ours": loss_ours,
        "loss_trl": loss_trl,
        "loss_abs_diff": abs(loss_ours - loss_trl),
        "grad_max_abs_diff": grad_diff,
        "grad_max_abs": grad_scale,
    }
    result["ratio_ours_over_trl"] = result["ours"]["tokens_per_s"] / result["trl"]["tokens_per_s"]
    result["losses_agree"] = result["loss_abs_diff"] < 1e-4
    return result


# ----------------------------------------------------------------------------------------------- main


def _load(loads: list[float | None]) -> str:
    known = [x for x in loads if x is not None]
    return f"{max(known):.1f}" if known else "n/a"


def contended(results: dict, threshold: float = QUIET_LOAD) -> bool:
    """Whether any kept repeat ran while other tasks wanted the CPUs (mean foreign runnable > threshold)."""
    gen, dpo = results["generation"], results["dpo_step"]
    loads = gen["batch_1"]["foreign_load"] + gen["batch_16"]["foreign_load"]
    loads += dpo["ours"]["foreign_load"] + dpo["trl"]["foreign_load"]
    return any(x is not None and x > threshold for x in loads)


def render(results: dict, console: Console) -> None:
    gen1, gen16 = results["generation"]["batch_1"], results["generation"]["batch_16"]
    dpo = results["dpo_step"]
    machine = results["machine"]
    table = Table(
        title=f"Policy ops, SmolLM2-135M-Instruct fp32, {machine['torch_threads']} torch threads",
        caption=(
            f"generate: T=0.6, top-p 0.9, ≤{gen1['max_new_tokens']} new tokens; DPO step: policy fwd+bwd and "
            "ref fwd, tokens = non-pad policy tokens; seconds and tokens/s: median over repeats; other "
            "load: max over repeats of the mean runnable tasks of other processes; "
            f"torch {machine['torch']}, trl {machine['trl']}"
        ),
    )
    for col in ("operation", "batch", "tokens", "seconds", "tokens/s", "vs", "other load"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for gen in (gen1, gen16):
        table.add_row(
            "generate",
            str(gen["batch"]),
            str(int(statistics.median(gen["tokens"]))),
            f"{statistics.median(gen['seconds']):.2f}",
            f"{gen['tokens_per_s']:.1f}",
            "" if gen is gen1 else f"{results['generation']['ratio_batch16_over_batch1']:.2f}× batch 1",
            _load(gen["foreign_load"]),
        )
    for name, label in (("ours", "DPO step, advgame"), ("trl", "DPO step, TRL")):
        table.add_row(
            label,
            f"{dpo['pairs']} pairs",
            str(dpo["tokens"]),
            f"{dpo[name]['seconds_median']:.2f}",
            f"{dpo[name]['tokens_per_s']:.1f}",
            f"{dpo['ratio_ours_over_trl']:.2f}× TRL" if name == "ours" else "",
            _load(dpo[name]["foreign_load"]),
        )
    console.print(table)
    verdict = "[green]agree[/green]" if dpo["losses_agree"] else "[red]DISAGREE[/red]"
    console.print(
        f"DPO loss ours {dpo['loss_ours']:.7f} vs TRL {dpo['loss_trl']:.7f}: "
        f"|diff| {dpo['loss_abs_diff']:.2e} ({verdict}); max |grad diff| {dpo['grad_max_abs_diff']:.2e} (max "
        f"|grad| {dpo['grad_max_abs']:.2e})"
    )
    if results["contended"]:
        console.print(
            "[yellow]warning: other processes competed for the CPUs during some repeats (see 'other load'); "
            "these timings are pessimistic — re-run on a quiet machine.[/yellow]"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default: {DEFAULT_OUT})")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke test in well under a minute"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the usable cores)")
    parser.add_argument(
        "--retries",
        type=int,
        default=None,
        help="re-runs of a repeat that other processes contended (default: 2)",
    )
    args = parser.parse_args(argv)
    # --quick is a smoke test: no waiting for a quiet machine, no re-runs
    patience = Patience(retries=0, max_wait=0.0, budget=0.0) if args.quick else Patience()
    if args.retries is not None:
        patience.retries = max(args.retries, 0)

    torch.set_num_threads(args.threads or available_cores())
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    console = Console(width=None if sys.stdout.isatty() else 120)

    if args.quick:
        sizes = {
            "max_new_tokens": 16,
            "gen_repeats": 1,
            "pairs": 2,
            "prompt_tokens": (8, 16),
            "completion_tokens": (12, 20),
            "step_repeats": 1,
        }
    else:  # with SmolLM2's chat template (system prompt): prompts of ~40-64 tokens, completions of ~58-72
        sizes = {
            "max_new_tokens": 64,
            "gen_repeats": 3,
            "pairs": 8,
            "prompt_tokens": (4, 28),
            "completion_tokens": (56, 70),
            "step_repeats": 3,
        }

    MONITOR.start()
    start = time.perf_counter()
    model, tokenizer = load_model(ModelConfig(path="smollm2", finetune="full"))
    console.print(f"loaded SmolLM2 in {time.perf_counter() - start:.1f}s; sizes {sizes}")

    gen = {}
    for batch in (1, 16):
        gen[f"batch_{batch}"] = bench_generation(
            model, tokenizer, batch, sizes["max_new_tokens"], sizes["gen_repeats"], patience
        )
        console.print(f"generate batch {batch}: {gen[f'batch_{batch}']['tokens_per_s']:.1f} tokens/s")
    gen["ratio_batch16_over_batch1"] = gen["batch_16"]["tokens_per_s"] / gen["batch_1"]["tokens_per_s"]

    dpo = bench_dpo_step(
        model,
        tokenizer,
        sizes["pairs"],
        sizes["prompt_tokens"],
        sizes["completion_tokens"],
        sizes["step_repeats"],
        patience,
        ref_noise=0.05,
    )
    results = {
        "benchmark": "policy_ops",
        "model": "SmolLM2-135M-Instruct (fp32, full fine-tuning)",
        "quick": args.quick,
        "machine": machine_info(),
        "sizes": sizes,
        "contention": {"quiet_load": QUIET_LOAD, **asdict(patience)},
        "generation": gen,
        "dpo_step": dpo,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    results["contended"] = contended(results)
    MONITOR.stop()
    render(results, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {args.out} ({results['wall_seconds']}s)")
    return 0 if dpo["losses_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
