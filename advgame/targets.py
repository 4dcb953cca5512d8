"""The model scored by `advgame eval` or attacked by `advgame redteam`, and the other LMs those tools load.

    target = load_target(ModelSource(path="smollm2"))                      # local: alias, dir, hub id, ...
    target = load_target(ModelSource(path="RUN", adapter="lora_dir"))      # ... with an extra LoRA adapter
    target = load_target(ModelSource(url="http://127.0.0.1:8000/v1", model="defender",
                                     api_key_env="ADVGAME_SERVE_TOKEN"), sampling=SamplingConfig())
    replies = target.chat(["prompt 1", "prompt 2"])                        # one Reply per prompt, in order

A local spec is any of `advgame.models.inference.load_chat_model`'s (an alias, an HF dir or hub id, a .gguf
file, a training run dir: its final `player`, a peft adapter dir). The display name goes into every result:
the spec (`+adapter` when one is applied), or `endpoint:<model>@<url>`. An endpoint's key is read from the
environment variable `api_key_env` and never logged (`advgame.backends.openai_compat`).

Every prompt sent through `chat` is one query, counted in `target.queries` (budgets and cost records read
it). A remote call that fails after its retries is a Reply with `error` set, never an exception mid-batch. A
local target also exposes `model` and `tokenizer` (white-box: GCG needs gradients); a remote one has None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from advgame.backends.base import GenerationBackend
from advgame.config.schema import SamplingConfig
from advgame.config.source import ModelSource
from advgame.policy.chat import Prompt

if TYPE_CHECKING:
    import torch

Loaded = tuple[GenerationBackend, str, Any, Any]  # (backend, display name, model or None, tokenizer or None)


@dataclass(frozen=True)
class Reply:
    text: str
    error: str | None = None  # why the target gave no answer (after retries), e.g. 'timeout', 'http_500'
    truncated: bool = False


class Target:
    """A chat model: a GenerationBackend, its display name, its decoding settings (for `chat`), a query
    counter, and for a local model the model and tokenizer."""

    def __init__(
        self,
        backend: GenerationBackend,
        name: str,
        sampling: SamplingConfig | None = None,
        *,
        model: torch.nn.Module | None = None,
        tokenizer=None,
        seed: int = 0,
    ):
        self.backend, self.name, self.sampling = backend, name, sampling
        self.model, self.tokenizer = model, tokenizer
        self.queries = 0
        self._seed = seed

    @property
    def white_box(self) -> bool:
        return self.model is not None and self.tokenizer is not None

    def chat(self, prompts: Sequence[Prompt]) -> list[Reply]:
        """One reply per prompt; each prompt counts as one query, answered or not."""
        if self.sampling is None:
            raise ValueError(f"target {self.name} has no decoding settings: build it with sampling=...")
        if not prompts:
            return []
        self.queries += len(prompts)
        self._seed += 1
        outs = self.backend.generate(list(prompts), self.sampling, num_samples=1, seed=self._seed)
        return [Reply(text=o.text, error=o.error, truncated=o.truncated) for o in outs]


def local_backend(
    spec: str,
    *,
    adapter: str | None = None,
    base_model: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    player: str = "defender",
) -> Loaded:
    """An HFBackend on a local spec, frozen and in eval mode; a run dir means its final `player`."""
    from advgame.backends.hf import HFBackend
    from advgame.models.inference import load_chat_model

    lm, tokenizer = load_chat_model(
        spec, adapter=adapter, device=device, player=player, base_model=base_model, dtype=dtype
    )
    name = spec + (f"+{adapter}" if adapter else "")
    return HFBackend(lm, tokenizer, name=name), name, lm, tokenizer


def endpoint_backend(source: ModelSource, name: str | None = None) -> GenerationBackend:
    """An OpenAIChatBackend on `source.url`; `name` defaults to the backend's own ('openai:<model>')."""
    from advgame.backends.openai_compat import OpenAIChatBackend

    if not source.model:
        raise ValueError(f"an endpoint ({source.url}) needs a model name")
    return OpenAIChatBackend(
        [source.url],
        source.model,
        api_key_env=source.api_key_env,
        max_concurrency=source.concurrency,
        timeout_s=source.timeout_s,
        max_retries=source.retries,
        name=name,
    )


def source_backend(
    source: ModelSource, *, device: str = "auto", player: str = "defender", what: str = "model"
) -> Loaded:
    """The backend of a local model or an endpoint, named for results (see the module docstring)."""
    if source.url:
        if source.path:
            raise ValueError(f"{what}: give either a local model or an endpoint URL, not both")
        name = f"endpoint:{source.model}@{source.url}"
        return endpoint_backend(source, name), name, None, None
    if not source.path:
        raise ValueError(f"{what}: no model given: pass a local model/checkpoint or an endpoint URL")
    return local_backend(
        source.path, adapter=source.adapter, base_model=source.base_model, device=device, player=player
    )


def load_target(
    source: ModelSource,
    *,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    device: str = "auto",
    player: str = "defender",
) -> Target:
    """The target `source` names; `sampling` is needed for `chat` (redteam), not by eval's generation."""
    backend, name, model, tokenizer = source_backend(source, device=device, player=player, what="target")
    return Target(backend, name, sampling, model=model, tokenizer=tokenizer, seed=seed)
