"""One player's update on one split: loss, backward (micro-batched), gradient all-reduce, clip, step.

The loss is the mean over the *global* batch (all processes) of the per-pair (or per-rollout) loss:
each process backpropagates Σ_local loss / N_global and the gradients are summed across processes, so N
processes give the same update as one process on the whole batch. Reference log-probs are computed
first, without gradients, by swapping the reference weights (EMA or initial) into the model; the policy
forward and backward come after, on the model's own weights.

`backward_mean` owns that skeleton (micro-batches, the reference and θ₀ passes, idle passes, the division
by N_global); `preference_backward` and `grpo_backward` only say what the loss of a micro-batch is.

A sharded (FSDP) player runs collectives in every forward and backward, so every process runs the same
number of micro-batches: one with fewer (or no) pairs joins the others' with one-token, zero-weight
passes that change no gradient.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from advgame import distributed
from advgame.config.schema import LossConfig
from advgame.game.signals import Pair, Rollout
from advgame.losses import dpo_loss, grpo_advantages, grpo_loss, ipo_loss, preference_margin
from advgame.models.sharding import full, is_dtensor, is_sharded
from advgame.player import Player
from advgame.policy.chat import pack_right_aligned
from advgame.policy.logprobs import CompletionLogprobs, completion_logprobs


def global_sum(value: float) -> float:
    """Sum of `value` over processes (the value itself when not distributed)."""
    if not distributed.active():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())


@dataclass
class LossStats:
    loss: float = 0.0  # mean over the global batch (all processes) of the per-pair or per-rollout loss
    total: float = 0.0  # pairs or rollouts on all processes: the optimiser steps only when > 0
    extra: dict[str, float] | None = None  # global means as well


# ------------------------------------------------------------------------------------------ the losses


def preference_backward(player: Player, pairs: Sequence[Pair], cfg: LossConfig, microbatch: int) -> LossStats:
    """Accumulate ∇ of mean-over-global-pairs DPO/IPO loss into the player's gradients."""
    loss_fn = dpo_loss if cfg.type == "dpo" else ipo_loss
    sums: Counter = Counter(margin=0.0, accuracy=0.0)  # every process sums the same keys

    def logprobs(mb: Sequence[Pair]) -> CompletionLogprobs:  # one forward: P chosen rows, then P rejected
        completions = [p.chosen_ids for p in mb] + [p.rejected_ids for p in mb]
        return completion_logprobs(player.model, [p.prompt_ids for p in mb] * 2, completions, _pad(player))

    def loss(mb: Sequence[Pair], pol: CompletionLogprobs, ref: CompletionLogprobs) -> torch.Tensor:
        (pol_w, pol_l), (ref_w, ref_l) = pol.sum.split(len(mb)), ref.sum.split(len(mb))
        # DPO (losses/dpo.py): −log σ(β·Δ);  IPO (losses/ipo.py, eq. 17): (Δ − 1/(2β))²,  where
        # Δ = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)]   (losses/margin.py)
        per_pair = loss_fn(pol_w, pol_l, ref_w, ref_l, cfg.beta)
        margin = preference_margin(pol_w, pol_l, ref_w, ref_l).detach()
        sums["margin"] += margin.sum().item()
        sums["accuracy"] += (margin > 0).sum().item()  # pairs already ranked right, relative to π_ref
        return per_pair.sum()

    return backward_mean(player, pairs, microbatch, logprobs, loss, sums)


def grpo_backward(
    player: Player, rollouts: Sequence[Rollout], cfg: LossConfig, microbatch: int, use_sampler_logprobs: bool
) -> LossStats:
    """Accumulate ∇ of the GRPO loss, averaged over the global number of rollouts."""
    adv = _global_advantages(rollouts, cfg)  # Â_i = r_i − mean(r) [/ std(r)], over the global batch
    sums: Counter = Counter(kl=0.0, advantage_abs=adv.abs().sum().item())  # the same keys on every process
    weighted: Counter = Counter()  # importance-weight sums over the tokens that carry one

    def logprobs(mb: Sequence[tuple[Rollout, torch.Tensor]]) -> CompletionLogprobs:
        prompts, completions = [r.prompt_ids for r, _ in mb], [r.completion_ids for r, _ in mb]
        return completion_logprobs(player.model, prompts, completions, _pad(player))

    def loss(mb, pol: CompletionLogprobs, ref: CompletionLogprobs) -> torch.Tensor:
        mb_adv = torch.stack([a for _, a in mb]).to(pol.tokens.device)
        mu, rows = _sampler_logprobs(mb, pol, weighted) if use_sampler_logprobs else (None, None)
        # −Σ_i Σ_t [min(π_θ/μ, cap)·Â_i·π_θ/sg(π_θ) − β·k3(π_θ‖π_ref)]   (losses/grpo.py; token sums)
        out = grpo_loss(
            pol.tokens,
            pol.mask,
            mb_adv,
            beta=cfg.beta,
            sampler_logprobs=mu,
            sampler_rows=rows,
            ref_logprobs=ref.tokens,
            is_cap=cfg.is_cap,
            reduction="sum",
        )
        sums["kl"] += out.kl.item() * len(mb)
        n = out.weighted_tokens.item()
        weighted.update(weight=out.importance_weight.item() * n, clipped=out.clipped_fraction.item() * n, n=n)
        return out.loss

    stats = backward_mean(player, list(zip(rollouts, adv)), microbatch, logprobs, loss, sums)
    if use_sampler_logprobs and cfg.is_cap is not None and stats.total > 0:
        stats.extra.update(_importance_weight_means(weighted, stats.total))
    return stats


def _importance_weight_means(weighted: Counter, total: float) -> dict[str, float]:
    """Over all processes: the mean truncated weight and the clipped fraction per weighted token, and the
    fraction of rollouts trained without sampler log-probs."""
    n = global_sum(weighted["n"])
    return {
        "importance_weight": global_sum(weighted["weight"]) / n if n else float("nan"),
        "is_clipped_fraction": global_sum(weighted["clipped"]) / n if n else float("nan"),
        "sampler_logprobs_missing": global_sum(weighted["missing"]) / total,
    }


def _sampler_logprobs(mb: Sequence[tuple[Rollout, torch.Tensor]], pol: CompletionLogprobs, counts: Counter):
    """The sampler's per-token log-probs μ laid out like `pol`, and which rows have them: a rollout without
    (usable) sampler log-probs, one per completion token, loses its own importance weight only (counted in
    counts['missing'])."""
    has = [r.sampler_logprobs is not None and len(r.sampler_logprobs) == len(r.completion_ids) for r, _ in mb]
    counts["missing"] += has.count(False)
    rows = [r.sampler_logprobs if ok else [] for (r, _), ok in zip(mb, has)]
    mu, _ = pack_right_aligned(rows, pol.tokens.shape[1])
    return mu.to(pol.tokens.device), torch.tensor(has, dtype=torch.bool, device=pol.tokens.device)


def _pad(player: Player) -> int:
    return player.tokenizer.pad_token_id


# ----------------------------------------------------------------------------------- the shared skeleton

LogprobsFn = Callable[[Sequence[Any]], CompletionLogprobs]
LossFn = Callable[[Sequence[Any], CompletionLogprobs, CompletionLogprobs], torch.Tensor]


def backward_mean(
    player: Player, items: Sequence, microbatch: int, logprobs: LogprobsFn, loss: LossFn, sums: Counter
) -> LossStats:
    """Accumulate ∇ (1/N) Σ_b loss(b), N = the number of items on all processes, over this process's
    micro-batches b of `items`:

        ref_b  = log π_ref(b)   the reference weights (EMA or θ₀) swapped in, no gradient
        init_b = log π_θ₀(b)    for the diagnostics (ref_b itself when θ₀ is the reference), no gradient
        pol_b  = log π_θ(b),    then backward of loss(b, pol_b, ref_b) / N     (loss: summed over b's items)

    `sums` holds per-item sums the loss adds to; they come back as global means, beside the loss."""
    total = global_sum(len(items))
    if total == 0:
        return LossStats(total=total)
    batches = [items[start : start + microbatch] for start in range(0, len(items), microbatch)]
    passes = _num_passes(player.model, len(batches))
    refs = _no_grad_passes(player, player.reference_weights(), batches, passes, logprobs)
    inits = _initial_passes(player, batches, passes, logprobs, refs)
    value, diag = 0.0, Counter()
    for i in range(passes):
        if i >= len(batches):
            _idle_pass(player.model, _pad(player), backward=True)
            continue
        pol = logprobs(batches[i])
        batch_loss = loss(batches[i], pol, refs[i])
        (batch_loss / total).backward()
        value += batch_loss.item()
        if inits is not None:  # diagnostics on the sampled sequences: log-ratio and NLL under θ₀, per token
            diag["log_ratio"] += ((pol.tokens.detach() - inits[i].tokens) * pol.mask).sum().item()
            diag["nll"] -= (inits[i].tokens * inits[i].mask).sum().item()
            diag["tokens"] += pol.mask.sum().item()
    means = {k: global_sum(v) / total for k, v in {"loss": value, **sums}.items()}
    return LossStats(means.pop("loss"), total, {**means, **_diagnostics(diag, inits is not None)})


def _global_advantages(rollouts: Sequence[Rollout], cfg: LossConfig) -> torch.Tensor:
    """GRPO advantages over the global batch (group ids made distinct per process); this process's slice."""
    rewards = [r.reward for r in rollouts]
    groups = [r.group for r in rollouts]
    if not distributed.active():
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
    return adv[start : start + len(rollouts)]


def _num_passes(model: torch.nn.Module, local_batches: int) -> int:
    """Micro-batches this process runs: its own, or the most any process has when the model is sharded."""
    if not is_sharded(model) or not distributed.active():
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


def _no_grad_passes(player: Player, weights, batches: list, passes: int, fn) -> list:
    """`fn(batch)` for each micro-batch under `weights` (a context that swaps weights in) without gradients;
    a sharded player joins the other processes' extra passes with idle ones."""
    out = []
    with torch.no_grad(), weights:
        for i in range(passes):
            if i < len(batches):
                out.append(fn(batches[i]))
            else:
                _idle_pass(player.model, _pad(player), backward=False)
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
    return {
        "log_ratio_initial": global_sum(sums["log_ratio"]) / tokens,
        "nll_initial": global_sum(sums["nll"]) / tokens,
    }


def all_reduce_grads(params: Sequence[torch.nn.Parameter], bucket_numel: int = 2**25) -> None:
    """Sum gradients across processes in flat buckets (no-op in a single process). Every process must pass
    the same parameters with a gradient tensor (zeros where it had no signal), or the collective hangs."""
    if not distributed.active():
        return
    bucket: list[torch.Tensor] = []

    def flush() -> None:
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        bucket.clear()

    for p in params:
        full_bucket = sum(g.numel() for g in bucket) + p.numel() > bucket_numel
        if bucket and (full_bucket or bucket[0].dtype != p.grad.dtype):
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
