"""One interface for every text generator: the players, LLM judges, and (later) vLLM or remote servers.

A backend turns chat prompts into completions. In-process backends return token ids, a `truncated`
flag and optionally the sampler's per-token log-probs (what the losses need); remote backends return
text only. A remote call that still fails after its retries comes back as a Completion with `error` set
(never raised mid-batch, never silently empty): callers count it and exclude it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from advgame.config.schema import SamplingConfig
from advgame.policy.chat import Prompt
from advgame.policy.sampling import Completion


@runtime_checkable
class GenerationBackend(Protocol):
    """Generates `num_samples` completions per prompt, prompt-major (p0s0, p0s1, p1s0, ...)."""

    name: str

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: SamplingConfig,
        *,
        num_samples: int = 1,
        seed: int | None = None,
        return_logprobs: bool = False,
    ) -> list[Completion]: ...
