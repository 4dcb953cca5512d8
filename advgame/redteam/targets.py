"""The model under attack, behind one interface, and the LLMs the attacks use (attacker, judge).

    target = build_target("smollm2")                                  # a local HF model / alias / checkpoint
    target = build_target("RUN", adapter="lora_dir")                  # ... with an extra LoRA adapter
    target = build_target(url="http://127.0.0.1:8000/v1", model="defender", api_key_env="ADVGAME_SERVE_TOKEN")
    replies = target.chat(["prompt 1", "prompt 2"])                   # one Reply per prompt, in order

Every prompt sent is one query and is counted in `target.queries` (budgets and cost records read it). A
remote call that fails after its retries is a Reply with `error` set, never an exception mid-batch. A local
target also exposes `model` and `tokenizer` (white-box: GCG needs gradients); a remote one has None there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from advgame.backends.base import GenerationBackend
from advgame.config.schema import SamplingConfig
from advgame.policy.chat import Prompt


@dataclass(frozen=True)
class Reply:
    text: str
    error: str | None = None  # why the target gave no answer (after retries), e.g. 'timeout', 'http_500'
    truncated: bool = False


class Target:
    """A chat model to attack: a GenerationBackend, its decoding settings, and a query counter."""

    def __init__(
        self, backend: GenerationBackend, sampling: SamplingConfig, name: str,
        model: torch.nn.Module | None = None, tokenizer=None, seed: int = 0,
    ):
        self.backend, self.sampling, self.name = backend, sampling, name
        self.model, self.tokenizer = model, tokenizer
        self.queries = 0
        self._seed = seed

    @property
    def white_box(self) -> bool:
        return self.model is not None and self.tokenizer is not None

    def chat(self, prompts: Sequence[Prompt]) -> list[Reply]:
        """One reply per prompt; each prompt counts as one query, answered or not."""
        if not prompts:
            return []
        self.queries += len(prompts)
        self._seed += 1
        outs = self.backend.generate(list(prompts), self.sampling, num_samples=1, seed=self._seed)
        return [Reply(text=o.text, error=o.error, truncated=o.truncated) for o in outs]


def build_backend(
    spec: str | None = None, *, adapter: str | None = None, url: str | None = None, model: str | None = None,
    api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4, retries: int = 3, timeout_s: float = 120.0,
    player: str = "defender",
) -> tuple[GenerationBackend, str, torch.nn.Module | None, object]:
    """(backend, display name, model or None, tokenizer or None) for a local spec or a remote endpoint; an
    advgame run dir given as `spec` means its final `player`."""
    if url:
        if spec:
            raise ValueError("give either a local model or an endpoint URL, not both")
        if not model:
            raise ValueError(f"an endpoint ({url}) needs a model name")
        from advgame.backends.openai_compat import OpenAIChatBackend

        name = f"endpoint:{model}@{url}"
        backend = OpenAIChatBackend(
            [url], model, api_key_env=api_key_env, max_concurrency=concurrency, timeout_s=timeout_s,
            max_retries=retries, name=name,
        )
        return backend, name, None, None
    if not spec:
        raise ValueError("no model given: pass a local model/checkpoint or an endpoint URL")
    from advgame.backends.hf import HFBackend
    from advgame.models.inference import load_chat_model

    lm, tokenizer = load_chat_model(spec, adapter=adapter, player=player)
    name = spec + (f"+{adapter}" if adapter else "")
    return HFBackend(lm, tokenizer, name=name), name, lm, tokenizer


def build_target(
    spec: str | None = None, *, sampling: SamplingConfig, seed: int = 0, **kwargs
) -> Target:
    """The target named by `spec` (local) or `url`+`model` (remote); see `build_backend` for the options."""
    backend, name, model, tokenizer = build_backend(spec, **kwargs)
    return Target(backend, sampling, name, model=model, tokenizer=tokenizer, seed=seed)
