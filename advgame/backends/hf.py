"""In-process Hugging Face backend: `model.generate` on the live weights.

It holds a reference to the model, not a copy: a player that swaps its EMA into the model
(`with player.sampling_weights(): ...`) samples from the EMA through the same backend, at no cost.
Any HF causal LM can also serve as an LLM judge through it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from advgame.config.schema import SamplingConfig
from advgame.policy.chat import Prompt
from advgame.policy.sampling import Completion, generate


class HFBackend:
    def __init__(self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, name: str = "hf"):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: SamplingConfig,
        *,
        num_samples: int = 1,
        seed: int | None = None,
        return_logprobs: bool = False,
    ) -> list[Completion]:
        if not prompts:
            return []
        rollouts = generate(
            self.model,
            self.tokenizer,
            prompts,
            sampling,
            seed=seed,
            num_samples=num_samples,
            return_logprobs=return_logprobs,
        )
        return rollouts.completions
