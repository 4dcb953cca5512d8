"""GRPO as used by AdvGame-GRPO: a relative-advantage policy gradient with a truncated importance
weight and a k3 KL penalty to a fixed reference (Shao et al., 2024; Dr.GRPO-style token sums).

Advantage of rollout i with reward r_i (rollouts whose reward is None, e.g. a judge failure, are excluded):

    Â_i = (r_i − mean(r)) [/ std(r)]       mean over the whole split batch ("batch", the authors' choice)
                                           or over the rollouts sharing i's group ("group")

Per-token objective, maximised, for completion token t of rollout i:

    w_{i,t}   = min(exp(log π_θ − log μ), cap)                 truncated importance weight, detached
                                                               (μ = the sampler's log-probs; w = 1 if off,
                                                               and for a rollout without sampler log-probs)
    pg_{i,t}  = w_{i,t} · Â_i · exp(log π_θ − sg[log π_θ])     value w·Â, gradient w·Â·∇log π_θ
    k3_{i,t}  = exp(log π_ref − log π_θ) − (log π_ref − log π_θ) − 1     ≥ 0, unbiased KL(π_θ‖π_ref) estimate
    J_i       = Σ_t mask_{i,t} · (pg_{i,t} − β · k3_{i,t})       summed over tokens, no length normalisation

    loss = −mean_i valid_i · J_i     (or the sum, for gradient accumulation across micro-batches)

The weight is detached on purpose: the authors' code multiplies by an undetached weight, which doubles the
policy-gradient term relative to the KL term whenever w < cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch


def grpo_advantages(
    rewards: Sequence[float | None],
    groups: Sequence[int] | None = None,
    mode: Literal["batch", "group"] = "batch",
    scale: bool = False,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages [N] and a validity mask [N] (False where the reward is None; advantage 0 there)."""
    valid = torch.tensor([r is not None for r in rewards], dtype=torch.bool)
    values = torch.tensor([0.0 if r is None else float(r) for r in rewards], dtype=torch.float64)
    if mode == "batch":
        group_ids = torch.zeros(len(values), dtype=torch.long)
    elif mode == "group":
        if groups is None or len(groups) != len(values):
            raise ValueError("mode='group' needs one group id per reward")
        group_ids = torch.as_tensor(list(groups), dtype=torch.long)
    else:
        raise ValueError(f"unknown advantage mode '{mode}' (allowed: batch, group)")
    adv = torch.zeros_like(values)
    for g in group_ids.unique():
        members = (group_ids == g) & valid
        if not members.any():
            continue
        centred = values[members] - values[members].mean()
        if scale:
            std = values[members].std(unbiased=False) if members.sum() > 1 else values.new_tensor(0.0)
            centred = centred / (std + eps)
        adv[members] = centred
    return adv.float(), valid


@dataclass
class GRPOLossOutput:
    loss: torch.Tensor
    policy_gradient: torch.Tensor  # mean over valid rollouts of Σ_t w·Â (detached)
    kl: torch.Tensor  # mean per-token k3 over valid completion tokens (detached)
    importance_weight: torch.Tensor  # mean w over the valid completion tokens that have a sampler log-prob
    clipped_fraction: torch.Tensor  # fraction of those tokens whose raw weight exceeded the cap
    weighted_tokens: torch.Tensor  # how many tokens the two statistics above cover (0: no correction)


def grpo_loss(
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    *,
    beta: float,
    sampler_logprobs: torch.Tensor | None = None,
    ref_logprobs: torch.Tensor | None = None,
    is_cap: float | None = 2.0,
    valid: torch.Tensor | None = None,
    reduction: Literal["mean", "sum"] = "mean",
    sampler_rows: torch.Tensor | None = None,
) -> GRPOLossOutput:
    """GRPO loss from per-token log-probs [N, T] of the policy (with grad), sampler and reference.

    `sampler_rows` [N] (bool) marks the rollouts whose `sampler_logprobs` row is real (default: all); the
    others are trained without the correction (w = 1), the rest of the micro-batch keeps it."""
    mask = mask.to(logprobs.dtype)
    if valid is None:
        valid = torch.ones(logprobs.shape[0], dtype=torch.bool, device=logprobs.device)
    row = valid.to(logprobs.dtype).to(logprobs.device)
    token_mask = mask * row[:, None]

    if sampler_logprobs is not None and is_cap is not None:
        has = torch.ones_like(row, dtype=torch.bool) if sampler_rows is None else sampler_rows.to(row.device)
        weighted_mask = token_mask * has.to(token_mask.dtype)[:, None]
        raw = torch.exp(logprobs.detach() - sampler_logprobs.detach())
        raw = torch.where(has[:, None], raw, torch.ones_like(raw))
        weight = raw.clamp(max=is_cap)
    else:
        weighted_mask = torch.zeros_like(token_mask)
        raw = weight = torch.ones_like(logprobs)
    weighted_tokens = weighted_mask.sum()
    clipped = (
        (raw > (is_cap or float("inf"))).to(logprobs.dtype) * weighted_mask
    ).sum() / weighted_tokens.clamp(min=1)
    pg = weight * advantages.to(logprobs)[:, None] * torch.exp(logprobs - logprobs.detach())

    if ref_logprobs is not None and beta > 0:
        log_ratio = ref_logprobs.detach() - logprobs
        k3 = torch.exp(log_ratio) - log_ratio - 1.0
    else:
        k3 = torch.zeros_like(logprobs)

    per_rollout = ((pg - beta * k3) * token_mask).sum(dim=1)
    total = -per_rollout.sum()
    loss = total / max(int(valid.numel()), 1) if reduction == "mean" else total
    n_tokens = token_mask.sum().clamp(min=1)
    n_valid = row.sum().clamp(min=1)
    return GRPOLossOutput(
        loss=loss,
        policy_gradient=((pg.detach() * token_mask).sum() / n_valid),
        kl=(k3.detach() * token_mask).sum() / n_tokens,
        importance_weight=(weight * weighted_mask).sum() / weighted_tokens
        if weighted_tokens > 0
        else logprobs.new_ones(()),
        clipped_fraction=clipped.detach(),
        weighted_tokens=weighted_tokens.detach(),
    )
