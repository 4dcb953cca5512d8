"""One player's update on one split: loss, backward (micro-batched), gradient all-reduce, clip, step.

The loss is the mean over the *global* batch (all processes) of the per-pair (or per-rollout) loss:
each process backpropagates Σ_local loss / N_global and the gradients are summed across processes, so N
processes give the same update as one process on the whole batch. Reference log-probs are computed
first, without gradients, by swapping the reference weights (EMA or initial) into the model; the policy
forward and backward come after, on the model's own weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from advgame.config.schema import LossConfig
from advgame.game.signals import Pair, Rollout
from advgame.losses import dpo_loss, grpo_advantages, grpo_loss, ipo_loss, preference_margin
from advgame.player import Player
from advgame.policy.chat import pack_right_aligned
from advgame.policy.logprobs import completion_logprobs


def global_sum(value: float) -> float:
    """Sum of `value` over processes (the value itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())


def _chunks(seq: Sequence, size: int):
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


@dataclass
class LossStats:
    loss: float = 0.0  # mean over this process's pairs or rollouts
    total: float = 0.0  # pairs or rollouts on all processes: the optimiser steps only when > 0
    extra: dict[str, float] | None = None


def preference_backward(player: Player, pairs: Sequence[Pair], cfg: LossConfig, microbatch: int) -> LossStats:
    """Accumulate ∇ of mean-over-global-pairs DPO/IPO loss into the player's gradients."""
    total = global_sum(len(pairs))
    if total == 0 or not pairs:
        return LossStats(total=total)
    pad = player.tokenizer.pad_token_id
    loss_fn = dpo_loss if cfg.type == "dpo" else ipo_loss
    batches = list(_chunks(pairs, microbatch))

    refs = []
    with torch.no_grad(), player.reference_weights():
        for mb in batches:
            refs.append(_pair_logprobs(player.model, mb, pad))
    value, margins = 0.0, []
    for mb, (ref_c, ref_r) in zip(batches, refs, strict=True):
        pol_c, pol_r = _pair_logprobs(player.model, mb, pad)
        per_pair = loss_fn(pol_c, pol_r, ref_c, ref_r, cfg.beta)
        (per_pair.sum() / total).backward()
        value += per_pair.detach().sum().item()
        margins.append(preference_margin(pol_c, pol_r, ref_c, ref_r).detach())
    margin = torch.cat(margins)
    extra = {"margin": margin.mean().item(), "accuracy": (margin > 0).float().mean().item()}
    return LossStats(value / len(pairs), total, extra)


def _pair_logprobs(model, pairs: Sequence[Pair], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of chosen and rejected completions, in one forward over 2P rows."""
    prompts = [p.prompt_ids for p in pairs] * 2
    completions = [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs]
    logps = completion_logprobs(model, prompts, completions, pad).sum
    return logps[: len(pairs)], logps[len(pairs):]


def grpo_backward(
    player: Player, rollouts: Sequence[Rollout], cfg: LossConfig, microbatch: int, use_sampler_logprobs: bool
) -> LossStats:
    """Accumulate ∇ of the GRPO loss, averaged over the global number of rollouts."""
    total = global_sum(len(rollouts))
    if total == 0 or not rollouts:
        return LossStats(total=total)
    adv, _ = grpo_advantages(
        [r.reward for r in rollouts], [r.group for r in rollouts], mode=cfg.advantage, scale=cfg.scale_advantage
    )
    pad = player.tokenizer.pad_token_id
    batches = [(rollouts[i:i + microbatch], adv[i:i + microbatch]) for i in range(0, len(rollouts), microbatch)]

    def logprobs(mb: Sequence[Rollout]):
        return completion_logprobs(player.model, [r.prompt_ids for r in mb], [r.completion_ids for r in mb], pad)

    with torch.no_grad(), player.reference_weights():
        refs = [logprobs(mb) for mb, _ in batches]
    value, kl = 0.0, 0.0
    for (mb, mb_adv), ref in zip(batches, refs, strict=True):
        pol = logprobs(mb)
        sampler = None
        if use_sampler_logprobs and all(r.sampler_logprobs is not None for r in mb):
            sampler, _ = pack_right_aligned([r.sampler_logprobs for r in mb], pol.tokens.shape[1])
            sampler = sampler.to(pol.tokens.device)
        out = grpo_loss(
            pol.tokens, pol.mask, mb_adv.to(pol.tokens.device), beta=cfg.beta, sampler_logprobs=sampler,
            ref_logprobs=ref.tokens, is_cap=cfg.is_cap, reduction="sum",
        )
        (out.loss / total).backward()
        value += out.loss.item()
        kl += out.kl.item() * len(mb)
    extra = {"kl": kl / len(rollouts), "advantage_abs": adv.abs().mean().item()}
    return LossStats(value / len(rollouts), total, extra)


def all_reduce_grads(model: torch.nn.Module) -> None:
    """Sum gradients across processes (no-op in a single process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for p in model.parameters():
        if p.requires_grad and p.grad is not None:
            dist.all_reduce(p.grad)


def optimizer_step(player: Player, max_grad_norm: float | None) -> float:
    """All-reduce, clip and apply the accumulated gradients; returns the pre-clip gradient norm."""
    params = [p for p in player.model.parameters() if p.requires_grad]
    all_reduce_grads(player.model)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm else float("inf"))
    player.optimizer.step()
    player.optimizer.zero_grad(set_to_none=True)
    return float(norm)
