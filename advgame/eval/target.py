"""The model being scored, as a GenerationBackend and a display name.

    --model smollm2 | tiny-llama | DIR | FILE.gguf | hub-id     in-process HF model (HFBackend)
    --model RUN_DIR                                           a training run: its final Defender
    --model ADAPTER_DIR                                       a peft adapter dir: base model + adapter
    --endpoint URL --endpoint-model NAME [--api-key-env VAR]  an OpenAI-compatible endpoint

The display name goes into every result ("smollm2", the path, or "endpoint:<model>@<url>").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from advgame.backends.base import GenerationBackend


@dataclass
class Target:
    backend: GenerationBackend
    name: str  # display name recorded in results


def run_defender_dir(path: Path) -> Path | None:
    """RUN/final/defender when `path` is a training run directory."""
    candidate = path / "final" / "defender"
    return candidate if candidate.is_dir() else None


def load_hf_target(model: str, device: str = "auto", dtype: str = "float32", base_model: str | None = None) -> Target:
    """An HFBackend on `model` (see the module docstring), frozen and in eval mode. `base_model` overrides
    the base an adapter's adapter_config.json names (needed when it names none, e.g. tiny test models)."""
    from advgame.backends.hf import HFBackend
    from advgame.config.schema import ModelConfig
    from advgame.models.loading import ModelNotFoundError, load_model, prepare_tokenizer

    path = Path(model).expanduser()
    if path.is_dir() and run_defender_dir(path) is not None:
        path = run_defender_dir(path)
    if path.is_dir() and (path / "adapter_config.json").is_file():
        from peft import PeftModel
        from transformers import AutoTokenizer

        base = base_model or json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base:
            raise ModelNotFoundError(f"{path}: the adapter names no base model; pass --base-model")
        base_model, tokenizer = load_model(ModelConfig(path=base, finetune="full", device=device, dtype=dtype))
        hf_model = PeftModel.from_pretrained(base_model, str(path))
        if (path / "tokenizer_config.json").is_file():
            tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(str(path)))
    else:
        source = str(path) if path.is_dir() else model
        hf_model, tokenizer = load_model(ModelConfig(path=source, finetune="full", device=device, dtype=dtype))
    hf_model.requires_grad_(False)
    hf_model.eval()
    return Target(HFBackend(hf_model, tokenizer, name=model), model)


def endpoint_target(url: str, model: str, api_key_env: str = "OPENAI_API_KEY", **options) -> Target:
    from advgame.backends.openai_compat import OpenAIChatBackend

    backend = OpenAIChatBackend([url], model, api_key_env=api_key_env, **options)
    return Target(backend, f"endpoint:{model}@{url}")
