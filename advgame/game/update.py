"""One player's update on one split: loss, backward (micro-batched), gradient all-reduce, clip, step.

The loss is the mean over the *global* batch (all processes) of the per-pair (or per-rollout) loss:
each process backpropagates Σ_local loss / N_global and the gradients are summed across processes, so N
processes give the same update as one process on the whole batch. Reference log-probs are computed
first, without gradients, by swapping the reference weights (EMA or initial) into the model; the policy
forward and backward come after, on the model's own weights.

A sharded (FSDP) player runs collectives in every forward and backward, so every process runs the same
number of micro-batches: one with fewer (or no) pairs joins the others' with one-token, zero-weight
passes that change no gradient.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from advgame.config.schema import LossConfig
from advgame.game.signals import Pair, Rollout
from advgame.losses import dpo_loss, grpo_advantages, grpo_loss, ipo_loss, preference_margin
from advgame.models.sharding import full, is_dtensor, is_sharded
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


def _global_advantages(rollouts: Sequence[Rollout], cfg: LossConfig) -> torch.Tensor:
    """GRPO advantages over the global batch (group ids made distinct per process); this process's slice."""
    rewards = [r.reward for r in rollouts]
    groups = [r.group for r in rollouts]
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return grpo_advantages(rewards, groups, mode=cfg.advantage, scale=cfg.scale_advantage)[0]
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (rewards, groups))
    all_rewards, all_groups, start = [], [], 0
    for rank, (r, g) in enumerate(parts):
        if rank == dist.get_rank():
            start = len(all_rewards)
        offset = max(all_groups, default=-1) + 1
        all_rewards += r
        all_groups += [x + offset for x in g]
    adv, _ = grpo_advantages(all_rewards, all_groups, mode=cfg.advantage, scale=cfg.scale_advantage)
    return adv[start:start + len(rollouts)]


def _chunks(seq: Sequence, size: int):
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def _num_passes(model: torch.nn.Module, local_batches: int) -> int:
    """Micro-batches this process runs: its own, or the most any process has when the model is sharded."""
    if not is_sharded(model) or not (dist.is_available() and dist.is_initialized()):
        return local_batches
    t = torch.tensor([local_batches], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def _idle_pass(model: torch.nn.Module, pad: int, backward: bool) -> None:
    """Join a sharded model's collectives without data: a one-token forward and a zero-weight backward."""
    device = next(model.parameters()).device
    logits = model(input_ids=torch.full((1, 1), pad, dtype=torch.long, device=device)).logits
    if backward:
        (logits.float().sum() * 0.0).backward()


@dataclass
class LossStats:
    loss: float = 0.0  # mean over the global batch (all processes) of the per-pair or per-rollout loss
    total: float = 0.0  # pairs or rollouts on all processes: the optimiser steps only when > 0
    extra: dict[str, float] | None = None  # global means as well


def _global_means(sums: dict[str, float], total: float) -> dict[str, float]:
    """Per-item means over all processes of locally summed values."""
    return {k: global_sum(v) / total for k, v in sums.items()}


def preference_backward(player: Player, pairs: Sequence[Pair], cfg: LossConfig, microbatch: int) -> LossStats:
    """Accumulate ∇ of mean-over-global-pairs DPO/IPO loss into the player's gradients."""
    total = global_sum(len(pairs))
    if total == 0:
        return LossStats(total=total)
    pad = player.tokenizer.pad_token_id
    loss_fn = dpo_loss if cfg.type == "dpo" else ipo_loss
    batches = list(_chunks(pairs, microbatch))
    passes = _num_passes(player.model, len(batches))

    def logprobs(mb: Sequence[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
        return _pair_logprobs(player.model, mb, pad)

    refs = _no_grad_passes(player, player.reference_weights(), batches, passes, logprobs)
    inits = _initial_passes(player, batches, passes, logprobs, refs)
    value, margins, diag = 0.0, [], Counter()
    for i in range(passes):
        if i >= len(batches):
            _idle_pass(player.model, pad, backward=True)
            continue
        (ref_c, ref_r), mb = refs[i], batches[i]
        pol_c, pol_r = logprobs(mb)
        per_pair = loss_fn(pol_c, pol_r, ref_c, ref_r, cfg.beta)
        (per_pair.sum() / total).backward()
        value += per_pair.detach().sum().item()
        margins.append(preference_margin(pol_c, pol_r, ref_c, ref_r).detach())
        if inits is not None:  # diagnostics on the sampled sequences: log-ratio and NLL under θ₀, per token
            (init_c, init_r) = inits[i]
            diag["log_ratio"] += (pol_c.detach() - init_c).sum().item() + (pol_r.detach() - init_r).sum().item()
            diag["nll"] -= (init_c + init_r).sum().item()
            diag["tokens"] += sum(len(p.chosen_ids) + len(p.rejected_ids) for p in mb)
    margin = torch.cat(margins) if margins else torch.zeros(0)
    sums = _global_means(
        {"loss": value, "margin": margin.sum().item(), "accuracy": (margin > 0).float().sum().item()}, total
    )
    return LossStats(sums.pop("loss"), total, {**sums, **_diagnostics(diag, inits is not None)})


def _no_grad_passes(player: Player, weights, batches: list, passes: int, fn) -> list:
    """`fn(batch)` for each micro-batch under `weights` (a context that swaps weights in) without gradients;
    a sharded player joins the other processes' extra passes with idle ones."""
    out = []
    with torch.no_grad(), weights:
        for i in range(passes):
            if i < len(batches):
                out.append(fn(batches[i]))
            else:
                _idle_pass(player.model, player.tokenizer.pad_token_id, backward=False)
    return out


def _initial_passes(player: Player, batches: list, passes: int, fn, refs: list) -> list | None:
    """Log-probs under the initial weights θ₀ for the diagnostics: the reference passes when θ₀ is the
    reference, one more no-grad pass otherwise; None when the player keeps no initial weights."""
    if player.initial is None:
        return None
    if not player.ema_cfg.ema_as_reference:
        return refs
    return _no_grad_passes(player, player.initial.swapped_in(player.model), batches, passes, fn)


def _diagnostics(sums: Counter, enabled: bool) -> dict[str, float]:
    """Per-token means over all processes: log π_θ − log π_θ₀ (a KL estimate when the sequences were sampled
    from π_θ itself; under MD they come from the EMA) and the NLL under θ₀ (fluency: degenerate text scores
    high)."""
    if not enabled:
        return {}
    tokens = global_sum(sums["tokens"])
    if tokens == 0:
        return {}
    return {"log_ratio_initial": global_sum(sums["log_ratio"]) / tokens, "nll_initial": global_sum(sums["nll"]) / tokens}


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
    if total == 0:
        return LossStats(total=total)
    adv = _global_advantages(rollouts, cfg)
    pad = player.tokenizer.pad_token_id
    batches = [(rollouts[i:i + microbatch], adv[i:i + microbatch]) for i in range(0, len(rollouts), microbatch)]
    passes = _num_passes(player.model, len(batches))

    def logprobs(mb: Sequence[Rollout]):
        return completion_logprobs(player.model, [r.prompt_ids for r in mb], [r.completion_ids for r in mb], pad)

    mbs = [mb for mb, _ in batches]
    refs = _no_grad_passes(player, player.reference_weights(), mbs, passes, logprobs)
    inits = _initial_passes(player, mbs, passes, logprobs, refs)
    value, kl, diag = 0.0, 0.0, Counter()
    weight_sum = clipped_sum = weighted_tokens = 0.0
    missing = 0  # rollouts trained without the importance weight: their sampler gave no (usable) log-probs
    for i in range(passes):
        if i >= len(batches):
            _idle_pass(player.model, pad, backward=True)
            continue
        (mb, mb_adv), ref = batches[i], refs[i]
        pol = logprobs(mb)
        sampler = rows = None
        if use_sampler_logprobs:  # per rollout: one without sampler log-probs loses its own weight only
            has = [_usable_sampler_logprobs(r) for r in mb]
            missing += has.count(False)
            sampler, _ = pack_right_aligned([r.sampler_logprobs if ok else [] for r, ok in zip(mb, has)],
                                            pol.tokens.shape[1])
            sampler = sampler.to(pol.tokens.device)
            rows = torch.tensor(has, dtype=torch.bool, device=pol.tokens.device)
        out = grpo_loss(
            pol.tokens, pol.mask, mb_adv.to(pol.tokens.device), beta=cfg.beta, sampler_logprobs=sampler,
            ref_logprobs=ref.tokens, is_cap=cfg.is_cap, reduction="sum", sampler_rows=rows,
        )
        (out.loss / total).backward()
        value += out.loss.item()
        kl += out.kl.item() * len(mb)
        n = out.weighted_tokens.item()
        weight_sum += out.importance_weight.item() * n
        clipped_sum += out.clipped_fraction.item() * n
        weighted_tokens += n
        if inits is not None:
            init = inits[i]
            diag["log_ratio"] += ((pol.tokens.detach() - init.tokens) * pol.mask).sum().item()
            diag["nll"] -= (init.tokens * init.mask).sum().item()
            diag["tokens"] += pol.mask.sum().item()
    sums = _global_means({"loss": value, "kl": kl, "advantage_abs": adv.abs().sum().item()}, total)
    if use_sampler_logprobs and cfg.is_cap is not None:  # token means over every process's weighted tokens
        tokens = global_sum(weighted_tokens)
        sums["importance_weight"] = global_sum(weight_sum) / tokens if tokens else float("nan")
        sums["is_clipped_fraction"] = global_sum(clipped_sum) / tokens if tokens else float("nan")
        sums["sampler_logprobs_missing"] = global_sum(missing) / total
    return LossStats(sums.pop("loss"), total, {**sums, **_diagnostics(diag, inits is not None)})


def _usable_sampler_logprobs(rollout: Rollout) -> bool:
    """A rollout's sampler log-probs can weight it: present, one per completion token."""
    return rollout.sampler_logprobs is not None and len(rollout.sampler_logprobs) == len(rollout.completion_ids)


def all_reduce_grads(params: Sequence[torch.nn.Parameter], bucket_numel: int = 2**25) -> None:
    """Sum gradients across processes in flat buckets (no-op in a single process). Every process must pass
    the same parameters with a gradient tensor (zeros where it had no signal), or the collective hangs."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    bucket: list[torch.Tensor] = []

    def flush() -> None:
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
        bucket.clear()

    for p in params:
        if bucket and (sum(g.numel() for g in bucket) + p.numel() > bucket_numel or bucket[0].dtype != p.grad.dtype):
            flush()
        bucket.append(p.grad)
    if bucket:
        flush()


def optimizer_step(player: Player, max_grad_norm: float | None) -> float:
    """All-reduce, clip and apply the accumulated gradients; returns the pre-clip gradient norm."""
    params = [p for p in player.model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:  # a process without pairs (or a parameter without signal) still joins the sum
            p.grad = torch.zeros_like(p)
    if not any(is_dtensor(p) for p in params):  # FSDP already reduce-scattered the sharded gradients
        all_reduce_grads(params)
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm else float("inf"))
    player.optimizer.step()
    player.optimizer.zero_grad(set_to_none=True)
    player.updates += 1
    return float(full(norm))
