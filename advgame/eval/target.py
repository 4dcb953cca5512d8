"""The model being scored, as a GenerationBackend and a display name.

    --model smollm2 | tiny-llama | DIR | FILE.gguf | hub-id     in-process HF model (HFBackend)
    --model RUN_DIR                                           a training run: its final Defender
    --model ADAPTER_DIR                                       a peft adapter dir: base model + adapter
    --endpoint URL --endpoint-model NAME [--api-key-env VAR]  an OpenAI-compatible endpoint

The display name goes into every result ("smollm2", the path, or "endpoint:<model>@<url>").
"""

from __future__ import annotations

from dataclasses import dataclass

from advgame.backends.base import GenerationBackend


@dataclass
class Target:
    backend: GenerationBackend
    name: str  # display name recorded in results


def load_hf_target(model: str, device: str = "auto", dtype: str = "float32", base_model: str | None = None) -> Target:
    """An HFBackend on `model` (see the module docstring and `advgame.models.inference`), frozen and in eval
    mode. `base_model` names the base of an adapter dir that records none (e.g. tiny test models)."""
    from advgame.backends.hf import HFBackend
    from advgame.models.inference import load_chat_model

    hf_model, tokenizer = load_chat_model(model, device=device, dtype=dtype, base_model=base_model)
    return Target(HFBackend(hf_model, tokenizer, name=model), model)


def endpoint_target(url: str, model: str, api_key_env: str = "OPENAI_API_KEY", **options) -> Target:
    from advgame.backends.openai_compat import OpenAIChatBackend

    backend = OpenAIChatBackend([url], model, api_key_env=api_key_env, **options)
    return Target(backend, f"endpoint:{model}@{url}")
