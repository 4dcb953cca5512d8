"""GPU smoke checks for mixed precision and the paper-scale code paths, on tiny random models (nothing is
fetched from a network). Run through `bench/gpu_smoke.sh`, which skips cleanly where there is no CUDA.

    python bench/gpu_smoke.py [--device cuda|cpu] [--only NAME ...]

Each check prints one line, `PASS name: detail` or `FAIL name: detail` (or `SKIP`), and the exit status is
the number of failures. `--device cpu` runs the same checks on the CPU (gloo instead of NCCL, no vLLM) to
test the script's own logic on a machine without a GPU; it proves nothing about CUDA.

    bf16_masters   fp32 master weights under bf16 autocast at lr 1e-6: ≥ 99% of the entries with a gradient
                   move, and the EMA moves; logits come out in bf16
    sampler_logprobs  per-step sampler log-probs equal the full-logits computation (≤ 1e-5) on the device
    dpo_md_step    one `advgame train` step of DPO-MD (fp32 masters, bf16 compute, scripted text and judges so
                   that pairs form): finite losses, the Attacker's fp32 masters moved, fp32 checkpoint
    grpo_step      one on-policy GRPO step with real sampling and sampler log-probs, heuristic judges: a
                   finite importance weight near 1 (sampler and learner are the same weights)
    fsdp_one_process  FSDP2 (fully_shard) on a 1-process group with MixedPrecisionPolicy: bf16 gathered
                   weights, fp32 shards, gradients and AdamW state, and an lr-1e-6 step that moves the shards
    vllm_generate  vLLM (if installed) generates from a tiny saved model in bf16, with sampler log-probs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

RESULTS: list[tuple[str, str, str]] = []


class Skip(Exception):
    pass


def check(name: str):
    def wrap(fn):
        fn.check_name = name
        return fn

    return wrap


def _seed_files(tmp: Path) -> tuple[str, str]:
    harmful, benign = tmp / "harmful.jsonl", tmp / "benign.jsonl"
    harmful.write_text(
        "".join(json.dumps({"prompt": f"how do I pick lock number {i}?"}) + "\n" for i in range(12))
    )
    benign.write_text(
        "".join(json.dumps({"prompt": f"how do I kill python process {i}?"}) + "\n" for i in range(12))
    )
    return str(harmful), str(benign)


def _run_config(device: str, tmp: Path, **sections):
    from advgame.config import validate_config

    harmful, benign = _seed_files(tmp)
    player = {
        "path": "tiny-llama",
        "finetune": "full",
        "device": device,
        "dtype": "float32",
        "compute_dtype": "bfloat16",
    }
    raw = {
        "name": "gpu-smoke",
        "output_dir": str(tmp / "runs"),
        "seed": 0,
        "attacker": player,
        "defender": {**player, "finetune": "lora", "lora": {"r": 4, "alpha": 8}},
        "attacker_sampling": {"max_new_tokens": 16, "batch_size": 16},
        "defender_sampling": {"max_new_tokens": 16, "batch_size": 16},
        "optim": {"lr": 1e-6},
        "loss": {"type": "dpo", "beta": 0.1},
        "ema": {"decay": 0.95},
        "game": {"attacker_format": "plain", "penalize_truncated_answers": False},
        "judges": {"default": {"kind": "heuristic"}},
        "data": {"harmful": harmful, "benign": benign, "batch_size": 4, "heldout": 2},
        "logging": {"progress": False},
        "checkpoint": {"every_n_steps": 1},
        "train": {"steps": 1, "validate_every_n_steps": 1, "validation_size": 2, "microbatch_size": 4},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return validate_config(raw)


def _train_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "harmful/attacker/reward" in r]


@check("bf16_masters")
def bf16_masters(device: str, tmp: Path) -> str:
    from advgame.game.signals import Pair
    from advgame.game.update import optimizer_step, preference_backward
    from advgame.train.setup import build_players

    cfg = _run_config(device, tmp)
    player, _ = build_players(cfg)
    tok = player.tokenizer
    ids = lambda t: tok(t, add_special_tokens=False)["input_ids"]
    pairs = [
        Pair(ids(p), ids("Sure, here is a careful answer."), ids("I can't help with that."), 1.0)
        for p in ("Bake a cake?", "Capital of France?", "Explain vaccines.")
    ]
    before = {n: p.detach().clone() for n, p in player.model.named_parameters() if p.requires_grad}
    ema_before = {n: t.clone() for n, t in player.ema.tensors.items()}
    dtypes: list[torch.dtype] = []
    hook = player.model.register_forward_hook(lambda m, a, out: dtypes.append(out.logits.dtype))
    preference_backward(player, pairs, cfg.loss, 8)
    hook.remove()
    grads = {n: p.grad.detach().clone() for n, p in player.model.named_parameters() if p.requires_grad}
    optimizer_step(player, cfg.optim.max_grad_norm)
    player.end_step()
    live = dict(player.model.named_parameters())
    total = moved = ema_moved = 0
    for n, g in grads.items():
        nz = g != 0
        total += int(nz.sum())
        moved += int(((live[n].detach() != before[n]) & nz).sum())
        ema_moved += int(((player.ema.tensors[n] != ema_before[n]) & nz).sum())
    frac, ema_frac = moved / total, ema_moved / total
    master = {p.dtype for p in player.model.parameters()} | {g.dtype for g in grads.values()}
    ok = frac >= 0.99 and ema_frac >= 0.99 and set(dtypes) == {torch.bfloat16} and master == {torch.float32}
    detail = (
        f"moved {frac:.4f}, EMA moved {ema_frac:.4f}, logits {sorted(map(str, set(dtypes)))}, "
        f"masters {master}"
    )
    if not ok:
        raise AssertionError(detail)
    return detail


@check("sampler_logprobs")
def sampler_logprobs(device: str, tmp: Path) -> str:
    from advgame.config.schema import SamplingConfig
    from advgame.models.precision import enable_autocast
    from advgame.models.tiny import tiny_model
    from advgame.policy.chat import encode_prompts, eos_ids, pad_left
    from advgame.policy.sampling import generate

    model, tok = tiny_model("qwen2", seed=0)
    model = enable_autocast(model.to(device).eval(), torch.bfloat16)
    prompts = ["hello there", "how do I bake a cake", "x"]
    cfg = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=24, batch_size=16)
    new = generate(model, tok, prompts, cfg, seed=3, num_samples=2, return_logprobs=True)
    ids = [p for p in encode_prompts(tok, prompts) for _ in range(2)]
    input_ids, mask = pad_left(ids, tok.pad_token_id)
    with torch.random.fork_rng(devices=[torch.device(device)] if device == "cuda" else []):
        torch.manual_seed(3)
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            do_sample=True,
            temperature=1.0,
            top_p=0.95,
            top_k=None,
            max_new_tokens=24,
            eos_token_id=eos_ids(tok),
            pad_token_id=tok.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
    logits = torch.stack(out.logits, 1).float()
    toks = out.sequences[:, input_ids.shape[1] :]
    ref = (logits.gather(-1, toks.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)).cpu()
    diff = 0.0
    for i, c in enumerate(new.completions):
        if c.token_ids != toks[i, : len(c.token_ids)].tolist():
            raise AssertionError(f"row {i}: sampled tokens differ from the reference generate")
        diff = max(diff, (torch.tensor(c.logprobs) - ref[i, : len(c.token_ids)]).abs().max().item())
    if diff > 1e-5:
        raise AssertionError(f"max |Δ log-prob| {diff:.2e} > 1e-5")
    return (
        f"max |Δ log-prob| {diff:.1e} over {sum(len(c.token_ids) for c in new.completions)} tokens (bf16 "
        "autocast)"
    )


@check("dpo_md_step")
def dpo_md_step(device: str, tmp: Path) -> str:
    """Scripted text and judges (so that every group yields a pair), real models, optimisers and EMA on the
    device: the bf16 backward of a whole game step must move the fp32 masters."""
    from advgame.models.tiny import tiny_model
    from advgame.train.checkpoint import load_checkpoint
    from advgame.train.trainer import train
    from tests.scripted import ScriptedBackend, ScriptedJudge, scripted_game

    def attacker(prompt: str, k: int) -> str:
        return "<prompt>please answer this question</prompt>" if k == 0 else "no tags here"

    def defender(prompt: str, k: int) -> str:
        return "I cannot help with that." if k == 0 else "Sure, here is how."

    def score(rubric: str, query: str, response: str) -> float:
        return 8.0 if response.startswith("I cannot") else 2.0

    cfg = _run_config(device, tmp, game={"attacker_format": "nothink"})
    _, tok = tiny_model("llama")
    judge = ScriptedJudge(score=score)
    backends = {"attacker": ScriptedBackend(attacker, tok), "defender": ScriptedBackend(defender, tok)}
    game = scripted_game(cfg, {"faithfulness": judge, "defender": judge, "attacker": judge}, backends)
    run_dir = train(cfg, tmp / "dpo", game=game)
    row = _train_rows(run_dir)[0]
    tensors, state, _ = load_checkpoint(run_dir)
    pairs = {k: v for k, v in row.items() if k.endswith("/pairs")}
    losses = [v for k, v in row.items() if k.endswith("/loss")]
    initial = dict(tiny_model("llama", seed=0)[0].named_parameters())
    moved = sum(int((t.cpu() != initial[n].detach()).sum()) for n, t in tensors["attacker"].items())
    total = sum(t.numel() for t in tensors["attacker"].values())
    dtypes = {t.dtype for t in tensors["attacker"].values()} | {
        t.dtype for t in tensors["attacker_ema"].values()
    }
    detail = (
        f"{row['time/step']:.1f} s, pairs {sum(pairs.values()):.0f}, losses finite "
        f"{all(map(math.isfinite, losses))}, attacker entries moved {moved / total:.3f}, checkpoint {dtypes}"
    )
    if (
        state["step"] != 1
        or min(pairs.values()) < 1
        or not all(map(math.isfinite, losses))
        or moved / total < 0.5
        or dtypes != {torch.float32}
    ):
        raise AssertionError(detail)
    return detail


@check("grpo_step")
def grpo_step(device: str, tmp: Path) -> str:
    from advgame.train.trainer import train

    cfg = _run_config(
        device,
        tmp,
        loss={"type": "grpo", "beta": 0.1, "is_cap": 2.0},
        ema={"decay": 0.95, "sample_from_ema": False, "ema_as_reference": False},
        judges={"default": {"kind": "heuristic", "mode": "pointwise"}},
    )
    row = _train_rows(train(cfg, tmp / "grpo"))[0]
    weights = {k: v for k, v in row.items() if k.endswith("/importance_weight")}
    missing = [v for k, v in row.items() if k.endswith("/sampler_logprobs_missing")]
    if not weights or any(not math.isfinite(w) or abs(w - 1) > 0.2 for w in weights.values()) or any(missing):
        raise AssertionError(f"importance weights {weights}, missing sampler log-probs {missing}")
    return f"importance weights {', '.join(f'{k}={v:.3f}' for k, v in weights.items())}"


@check("fsdp_one_process")
def fsdp_one_process(device: str, tmp: Path) -> str:
    import torch.distributed as dist

    from advgame.config.schema import ShardingConfig
    from advgame.models.sharding import gathered, local, shard_model
    from advgame.models.tiny import tiny_model
    from advgame.policy.logprobs import completion_logprobs

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("SMOKE_PORT", "29533"))
    dist.init_process_group("nccl" if device == "cuda" else "gloo", rank=0, world_size=1)
    try:
        model, tok = tiny_model("llama", seed=0)
        model = model.to(device).train()
        shard_model(model, ShardingConfig(strategy="fsdp"), torch.bfloat16)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6, betas=(0.9, 0.95), weight_decay=0.1)
        before = {n: local(p).detach().clone() for n, p in model.named_parameters()}
        ids = lambda t: tok(t, add_special_tokens=False)["input_ids"]
        dtypes: list[torch.dtype] = []
        hook = model.register_forward_hook(lambda m, a, out: dtypes.append(out.logits.dtype))
        out = completion_logprobs(
            model,
            [ids("Bake a cake?"), ids("Explain vaccines.")],
            [ids("Preheat the oven."), ids("They train immunity.")],
            tok.pad_token_id,
        )
        out.sum.sum().backward()
        hook.remove()
        grads = {n: local(p.grad).detach().clone() for n, p in model.named_parameters()}
        opt.step()
        states = [s for s in opt.state.values()]
        moved = total = 0
        for n, p in model.named_parameters():
            nz = grads[n] != 0
            total += int(nz.sum())
            moved += int(((local(p).detach() != before[n]) & nz).sum())
        with gathered(model):
            text = model.generate(
                input_ids=torch.tensor([ids("Hello")], device=device),
                max_new_tokens=4,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
        shard_dtypes = (
            {local(p).dtype for p in model.parameters()}
            | {g.dtype for g in grads.values()}
            | {local(s["exp_avg"]).dtype for s in states}
        )
        detail = (
            f"logits {sorted(map(str, set(dtypes)))}, shards/grads/AdamW {sorted(map(str, shard_dtypes))}, "
            f"moved {moved / total:.4f}, generated {text.shape[1]} tokens gathered"
        )
        if set(dtypes) != {torch.bfloat16} or shard_dtypes != {torch.float32} or moved / total < 0.99:
            raise AssertionError(detail)
        return detail
    finally:
        dist.destroy_process_group()


@check("vllm_generate")
def vllm_generate(device: str, tmp: Path) -> str:
    import importlib.util

    if device != "cuda":
        raise Skip("vLLM is checked on CUDA only")
    if importlib.util.find_spec("vllm") is None:
        raise Skip("vllm not installed")
    from advgame.backends.vllm_engine import VLLMEngineBackend
    from advgame.config.schema import SamplingConfig
    from advgame.models.tiny import tiny_model

    model, tok = tiny_model("llama", seed=0, hidden_size=256)
    path = tmp / "tiny-llama-vllm"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    engine = VLLMEngineBackend(
        str(path), tokenizer=tok, dtype="bfloat16", seed=0, gpu_memory_utilization=0.2, max_model_len=256
    )
    outs = engine.generate(
        ["Hello there", "Bake a cake"],
        SamplingConfig(max_new_tokens=16, batch_size=4),
        num_samples=2,
        seed=0,
        return_logprobs=True,
    )
    if len(outs) != 4 or any(o.logprobs is None or len(o.logprobs) != len(o.token_ids) for o in outs):
        raise AssertionError(
            f"{len(outs)} completions, "
            f"log-probs {[None if o.logprobs is None else len(o.logprobs) for o in outs]}"
        )
    return f"{sum(len(o.token_ids) for o in outs)} tokens in 4 completions, with log-probs"


CHECKS = [bf16_masters, sampler_logprobs, dpo_md_step, grpo_step, fsdp_one_process, vllm_generate]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--only", nargs="*", help="run only these checks")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA: skipped")
        return 0
    if args.device == "cuda":
        print(
            f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, bf16 supported: "
            f"{torch.cuda.is_bf16_supported()}"
        )
    failures = 0
    for fn in CHECKS:
        if args.only and fn.check_name not in args.only:
            continue
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                detail = fn(args.device, Path(tmp))
                status = "PASS"
            except Skip as why:
                status, detail = "SKIP", str(why)
            except Exception as err:  # noqa: BLE001 - every failure is reported, the next check still runs
                status, detail = "FAIL", f"{type(err).__name__}: {err}"
                traceback.print_exc(file=sys.stderr)
        failures += status == "FAIL"
        print(f"{status} {fn.check_name}: {detail} ({time.perf_counter() - start:.1f} s)", flush=True)
    print(f"{'PASS' if not failures else 'FAIL'}: {failures} check(s) failed")
    return failures


if __name__ == "__main__":
    sys.exit(main())
