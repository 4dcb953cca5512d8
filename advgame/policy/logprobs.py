"""Per-token and summed log-probabilities of given completions, in one batched forward pass.

Each row is laid out as [padding][prompt][completion], left-padded so that every completion ends at the
last position. Logits are then needed only for the last T+1 positions (T = longest completion), so the
vocabulary projection is skipped over prompt tokens, and log-softmax is taken in float32 on the target
tokens only (logit − logsumexp), never materialising a full log-softmax copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from advgame.policy.chat import pad_left


@dataclass
class CompletionLogprobs:
    """Right-aligned per-token log-probs [B, T] and mask [B, T]; `.sum` gives the sequence log-probs [B]."""

    tokens: torch.Tensor
    mask: torch.Tensor

    @property
    def sum(self) -> torch.Tensor:
        return (self.tokens * self.mask).sum(dim=-1)

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(dim=-1)


def completion_logprobs(
    model: torch.nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    pad_id: int,
) -> CompletionLogprobs:
    """log π(completion_t | prompt, completion_<t) for every completion token, with gradients if enabled."""
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("every prompt needs at least one token")
    width = max(len(c) for c in completion_ids)
    rows = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids)]
    device = next(model.parameters()).device
    input_ids, attention_mask = pad_left(rows, pad_id)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
        logits_to_keep=width + 1,
    )
    logits = out.logits[:, :-1].float()  # position j predicts token j+1: the last `width` tokens
    targets = input_ids[:, -width:] if width else input_ids[:, :0]
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    token_logps = picked - torch.logsumexp(logits, dim=-1)
    lengths = torch.tensor([len(c) for c in completion_ids], device=device)
    mask = torch.arange(width, device=device)[None, :] >= (width - lengths)[:, None]
    return CompletionLogprobs(tokens=token_logps * mask, mask=mask)
