"""Time `VLLMEngineBackend.push_weights` (full fine-tune weight sync into an in-process vLLM engine).

    nice -n 10 .venv-vllm/bin/python bench/weight_push.py [--model smollm2] [--pushes 3]

Pushes the model's own weights `--pushes` times (safetensors to /dev/shm, then vLLM's in-place reload in the
worker, then a prefix-cache reset) and checks that greedy generation is unchanged afterwards, as it must be
for identical weights. Prints the times and writes bench/results/weight_push.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from advgame.atomic import write_json_atomic

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--pushes", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench/results/weight_push.json"))
    args = ap.parse_args(argv)

    import torch
    import vllm

    from advgame.backends.vllm_engine import VLLMEngineBackend
    from advgame.config.schema import ModelConfig, SamplingConfig
    from advgame.models.loading import load_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tok = load_model(ModelConfig(path=args.model, finetune="full", dtype="float32", device=device))
    engine = VLLMEngineBackend(args.model, tokenizer=tok, dtype="float32", max_model_len=1024)
    greedy = SamplingConfig(temperature=0, max_new_tokens=16)
    before = engine.generate(["Say hi."], greedy, return_logprobs=True)[0]
    seconds = [engine.push_weights(model.state_dict().items()) for _ in range(args.pushes)]
    after = engine.generate(["Say hi."], greedy, return_logprobs=True)[0]
    engine.close()
    out = {
        "model": args.model,
        "device": device,
        "dtype": "float32",
        "vllm": vllm.__version__,
        "params": sum(p.numel() for p in model.parameters()),
        "push_seconds": seconds,
        "greedy_unchanged": before.token_ids == after.token_ids,
        "max_logprob_diff": max(abs(a - b) for a, b in zip(before.logprobs, after.logprobs)),
        "load_avg_1m": os.getloadavg()[0],
    }
    print(json.dumps(out, indent=2))
    write_json_atomic(args.out, out)
    return out


if __name__ == "__main__":  # vLLM starts worker processes that re-import this module
    main()
