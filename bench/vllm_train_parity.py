"""After `advgame train` with a vLLM engine: does an engine synced to the trained weights generate what HF
does?

    nice -n 10 .venv-vllm/bin/python bench/vllm_train_parity.py RUN_DIR [--role defender] [key=value ...]

Reads RUN_DIR/config.yaml (plus overrides, e.g. defender.engine.max_lora_rank=64), the trained weights
RUN_DIR/final/ROLE (a peft adapter dir or full weights), and the last validation of RUN_DIR/rollouts.jsonl
(greedy answers to held-out seeds; with `ROLE.engine.kind=vllm`, the run's engine generated them). Then:

1. HF: the trained model answers the same seeds greedily (`HFBackend`, the in-process reference).
2. vLLM: an engine built as the trainer builds it (`build_engine`) answers before any sync (base weights),
   then after `EngineSync.sync` (the trainer's path: adapter loaded by name, or full weights pushed).

It prints how many answers agree token for token (engine after sync vs HF; engine before sync vs HF) and in
text with the run's logged answers, and times a sampled batch (the seeds × 6 samples) before and after the
sync. Writes bench/results/vllm_train_parity_<ROLE>_<finetune>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from advgame.atomic import write_json_atomic

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def last_validation(run_dir: Path) -> tuple[int, list[dict]]:
    rows = [
        json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines() if line.strip()
    ]
    valid = [r for r in rows if r.get("split") == "valid"]
    step = max(r["step"] for r in valid)
    return step, [r for r in valid if r["step"] == step]


def trained_model(model_cfg, final_dir: Path):
    """The trained player as HF weights: base + the saved adapter, or the saved full model."""
    from advgame.models.loading import load_model

    if model_cfg.finetune == "lora":
        from peft import PeftModel

        base, tok = load_model(model_cfg.model_copy(update={"finetune": "full"}))
        return PeftModel.from_pretrained(base, str(final_dir)).eval(), tok
    model, tok = load_model(model_cfg.model_copy(update={"path": str(final_dir), "finetune": "full"}))
    return model.eval(), tok


def timed(backend, prompts, sampling, **kw):
    t0 = time.perf_counter()
    outs = backend.generate(prompts, sampling, **kw)
    return outs, time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--role", default="defender", choices=["attacker", "defender"])
    ap.add_argument("--out", type=Path)
    ap.add_argument("overrides", nargs="*", help="config overrides (key=value) for the engine built here")
    args = ap.parse_intermixed_args(argv)

    from advgame.backends.hf import HFBackend
    from advgame.backends.weight_sync import EngineSync, build_engine, vllm_lora_rank
    from advgame.config.load import load_config

    cfg = load_config(args.run_dir / "config.yaml", args.overrides)
    model_cfg = getattr(cfg, args.role).model_copy(update={"device": "cpu"})
    model_cfg = model_cfg.model_copy(update={"engine": model_cfg.engine.model_copy(update={"kind": "vllm"})})
    step, logged = last_validation(args.run_dir)
    prompts = [r["seed"] for r in logged]
    greedy = cfg.defender_sampling.model_copy(update={"temperature": 0.0})
    sampled = cfg.defender_sampling

    model, tok = trained_model(model_cfg, args.run_dir / "final" / args.role)
    hf = HFBackend(model, tok).generate(prompts, greedy)
    engine = build_engine(model_cfg, tok, args.role, cfg.seed)
    before = engine.generate(prompts, greedy)
    _, before_s = timed(engine, prompts, sampled, num_samples=6, seed=0)
    sync = EngineSync(engine, args.role)
    sync_s = sync.sync(model, ("final",))
    after = engine.generate(prompts, greedy)
    _, after_s = timed(engine, prompts, sampled, num_samples=6, seed=0)
    engine.close()

    def same(a, b):
        return sum(x.token_ids == y.token_ids for x, y in zip(a, b, strict=True))

    out = {
        "run_dir": str(args.run_dir),
        "role": args.role,
        "finetune": model_cfg.finetune,
        "validation_step": step,
        "prompts": len(prompts),
        "max_new_tokens": greedy.max_new_tokens,
        "max_lora_rank": vllm_lora_rank(model_cfg.lora.r, model_cfg.engine.max_lora_rank)
        if model_cfg.finetune == "lora"
        else None,
        "engine_after_sync_equals_hf": same(after, hf),
        "engine_before_sync_equals_hf": same(before, hf),
        "engine_after_sync_equals_run_log": sum(
            a.text == r["answer"] for a, r in zip(after, logged, strict=True)
        ),
        "hf_equals_run_log": sum(h.text == r["answer"] for h, r in zip(hf, logged, strict=True)),
        "sync_seconds": sync_s,
        "sampled_batch": {
            "completions": len(prompts) * 6,
            "seconds_before_sync": before_s,
            "seconds_after_sync": after_s,
        },
        "examples": [
            {"seed": p, "hf": h.text, "engine": a.text, "engine_before_sync": b.text}
            for p, h, a, b in list(zip(prompts, hf, after, before))[:2]
        ],
    }
    n = len(prompts)
    print(
        f"{args.run_dir} {args.role} ({model_cfg.finetune}), last validation step {step}, {n} greedy answers:"
    )
    print(f"  engine after sync == HF (token ids):   {out['engine_after_sync_equals_hf']}/{n}")
    print(f"  engine before sync == HF (token ids):  {out['engine_before_sync_equals_hf']}/{n}")
    print(f"  engine after sync == run's log (text): {out['engine_after_sync_equals_run_log']}/{n}")
    print(f"  HF == run's log (text):                {out['hf_equals_run_log']}/{n}")
    print(
        f"  sync {sync_s:.2f} s; {n * 6} sampled completions: {before_s:.1f} s before sync, "
        f"{after_s:.1f} s after"
    )
    target = args.out or Path(f"bench/results/vllm_train_parity_{args.role}_{model_cfg.finetune}.json")
    write_json_atomic(target, out)
    return out


if __name__ == "__main__":
    main()
