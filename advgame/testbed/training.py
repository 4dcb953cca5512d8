"""The update rules, on the tabular game, with the project's own losses and EMA.

One game step (all methods; paper notes §2.1):

  1. every seed s is played `groups_per_seed` times: A rewrites k ~ sampler_att(·|s); each faithful rewrite's
     prompt x gets D responses y ~ sampler_def(·|x); unfaithful rewrites never reach the defender
  2. judges (judge.py): defender pairs (y₁, y₂ | x) by the class's rubric; attacker pairs (x₁, x₂ | s)
     judged on the responses the attacker gets (the first one, or the defender judge's preferred one if
     `optimistic`), an unfaithful rewrite being worth −1; GRPO uses pointwise scores instead
  3. one optimiser step per player on its loss (mean over pairs / rollouts), then θ̄ ← d·θ̄ + (1−d)·θ

Both seed classes share one batch. The paper takes one update per class split; with per-context logits
the two splits touch disjoint parameters, so this is the same update up to the mean's denominator.

Methods (what samples, what the loss is measured against; β_m = the judge-matched loss β, judge.py:
β for DPO with the BT judge, β/(2·reward span) for IPO with the linear judge):

    name          loss  sampler   loss reference                  loss β    schedule
    dpo_md        DPO   EMA       π̄^(1−η)·π_ref^η (anchored)      β_m/η     simultaneous   ← "DPO-MD" here
    ipo_md        IPO   EMA       π̄^(1−η)·π_ref^η (anchored)      β_m/η     simultaneous   ← "IPO-MD" here
    dpo_md_ema    DPO   EMA       EMA π̄  (authors' code)          β_m       simultaneous
    ipo_md_ema    IPO   EMA       EMA π̄  (authors' code)          β_m       simultaneous
    grpo          GRPO  current   π_ref (k3 KL, weight β)         β         simultaneous
    no_ema        DPO   current   π_ref                           β_m       simultaneous
    sequential    DPO   current   π_ref                           β_m       attacker K steps, defender K

Rest points (docs/testbed.md): at rest θ = θ̄, and the anchored reference gives
log π − log(π̄^(1−η)·π_ref^η) = η·log(π/π_ref) + const, so DPO with a BT judge (IPO with a linear judge)
rests where η·β_loss·Δlog(π/π_ref) = (β_m/β)·ΔR, i.e. at π* of the game at β when β_loss = β_m/η.
The authors' reference (η = 0) ties π to nothing but its own average: the rest point is the
unregularised equilibrium. GRPO's k3 penalty, differentiated as a loss, regularises with KL(π_ref‖π).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Literal

import torch

from advgame.losses import dpo_loss, grpo_advantages, grpo_loss, ipo_loss
from advgame.testbed.game import TabularGame
from advgame.testbed.judge import Judge, JudgeConfig, make_judge
from advgame.testbed.policies import Anchor, TabularPlayer
from advgame.testbed.solver import Equilibrium, exploitability


@dataclass
class TrainConfig:
    """Knobs shared by every method."""

    steps: int = 1500
    """Game steps (each: one rollout batch, one optimiser step per trained player, one EMA update)."""
    seed: int = 0
    """Seed of the rollout and judge sampler (the start, θ₀ = log π_ref, is the same for every method)."""
    groups_per_seed: int = 64
    """Independent rollout groups per seed per step (the paper: 32 seeds per update, of thousands)."""
    optimizer: Literal["adam", "sgd"] = "adam"
    """Optimiser of the logits (Adam betas (0.9, 0.95), no weight decay: it would pull logits to uniform)."""
    lr: float = 0.05
    """Peak learning rate of both players, every method."""
    lr_final_scale: float = 0.1
    """Cosine decay of the learning rate to lr_final_scale·lr at the last step (the paper decays to 0.2·lr).
    With Adam the last iterate fluctuates by about the current lr, so a decay is what lets it settle."""
    ema_decay: float = 0.95
    """EMA decay d, as in the paper."""
    anchor_mix: float = 0.5
    """η: weight of π_ref in the anchored MD reference π̄^(1−η)·π_ref^η (loss β = β/η)."""
    sequential_block: int = 50
    """K: steps per player per turn in the sequential baseline (attacker first)."""
    optimistic: bool = False
    """Attacker scored with the defender's preferred response among D (authors' code) instead of the first
    one. The solver's equilibrium uses the expectation, so True trains towards a different point."""
    eval_every: int = 10
    """Steps between measurements of distance and exploitability."""


@dataclass
class Method:
    name: str
    label: str
    loss: Literal["dpo", "ipo", "grpo"]
    sampler: Anchor
    reference: Anchor
    schedule: Literal["simultaneous", "sequential"] = "simultaneous"
    rewrites: int = 2  # A, per seed
    responses: int = 2  # D, per faithful rewrite

    def loss_beta(self, judge: Judge, beta: float, anchor_mix: float) -> float:
        """β of the loss: the judge-matched β (see judge.py), divided by η for the anchored reference."""
        b = judge.loss_beta(beta, self.loss)
        return b / anchor_mix if self.reference == "mixture" else b


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("dpo_md", "DPO-MD (anchored)", "dpo", "ema", "mixture"),
        Method("ipo_md", "IPO-MD (anchored)", "ipo", "ema", "mixture"),
        Method("grpo", "GRPO (on-policy)", "grpo", "current", "initial", rewrites=4, responses=4),
        Method("no_ema", "no EMA (on-policy DPO)", "dpo", "current", "initial"),
        Method(
            "sequential", "sequential (alternating DPO)", "dpo", "current", "initial", schedule="sequential"
        ),
        Method("dpo_md_ema", "DPO-MD, authors' EMA ref", "dpo", "ema", "ema"),
        Method("ipo_md_ema", "IPO-MD, authors' EMA ref", "ipo", "ema", "ema"),
    ]
}


@dataclass
class Curves:
    method: str
    steps: list[int] = field(default_factory=list)
    tv_attacker: list[float] = field(default_factory=list)
    tv_defender: list[float] = field(default_factory=list)
    exploitability: list[float] = field(default_factory=list)
    rho: torch.Tensor | None = None  # last iterate
    pi: torch.Tensor | None = None

    @property
    def tv(self) -> list[float]:
        """Both players: the larger of the two mean TV distances."""
        return [max(a, d) for a, d in zip(self.tv_attacker, self.tv_defender)]


def tv_distance(p: torch.Tensor, q: torch.Tensor) -> float:
    """Mean over contexts (rows) of the total-variation distance."""
    return float(0.5 * (p.to(torch.float64) - q.to(torch.float64)).abs().sum(-1).mean())


# ---- one game step ----------------------------------------------------------------------------------------
@dataclass
class Pairs:
    """Preference pairs of one player: context, chosen action, rejected action."""

    context: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor


@dataclass
class Rollouts:
    """Pointwise rollouts of one player (GRPO): context, action, reward, sampler log-prob."""

    context: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    sampler_logprob: torch.Tensor


def play(
    game: TabularGame,
    attacker: TabularPlayer,
    defender: TabularPlayer,
    method: Method,
    cfg: TrainConfig,
    gen,
    mix: float,
):
    """Step 1 (sampling) of a game step. Returns seeds [N], rewrites k [N, A], prompts [N, A],
    responses [N, A, D] (−1 where the rewrite is unfaithful), with N = S·groups_per_seed."""
    seeds = torch.arange(game.num_seeds).repeat_interleave(cfg.groups_per_seed)
    k = attacker.sample(method.sampler, seeds, method.rewrites, gen, mix)
    x = game.prompt_of[seeds[:, None], k]
    faithful = x >= 0
    y = defender.sample(method.sampler, x.clamp(min=0).reshape(-1), method.responses, gen, mix)
    y = y.reshape(*x.shape, method.responses).masked_fill(~faithful[..., None], -1)
    return seeds, k, x, y


def preference_pairs(game: TabularGame, seeds, k, x, y, judge: Judge, gen, optimistic: bool):
    """Step 2 for DPO/IPO (A = D = 2): one defender pair per faithful rewrite, one attacker pair per group."""
    faithful = x >= 0
    s3 = seeds[:, None].expand_as(k)
    r_def = game.def_reward[s3[..., None], k[..., None], y.clamp(min=0)]  # [N, A, 2]
    first_wins, usable = judge.verdict(r_def[..., 0], r_def[..., 1], gen)
    y_w = torch.where(first_wins, y[..., 0], y[..., 1])
    y_l = torch.where(first_wins, y[..., 1], y[..., 0])
    keep = faithful & usable & (y_w != y_l)
    defender = Pairs(x[keep], y_w[keep], y_l[keep])

    # what each rewrite earns the attacker: the first response, or the defender judge's preferred one
    shown = torch.where(usable & torch.tensor(optimistic), y_w, y[..., 0]).clamp(min=0)
    r_att = torch.where(faithful, game.att_reward[s3, k, shown], game.att_reward[s3, k, 0])  # [N, 2]
    first_wins, usable = judge.verdict(r_att[:, 0], r_att[:, 1], gen)
    k_w = torch.where(first_wins, k[:, 0], k[:, 1])
    k_l = torch.where(first_wins, k[:, 1], k[:, 0])
    keep = usable & (k_w != k_l) & (faithful[:, 0] | faithful[:, 1])  # two unfaithful rewrites tie
    attacker = Pairs(seeds[keep], k_w[keep], k_l[keep])
    return attacker, defender


def pointwise_rollouts(game: TabularGame, seeds, k, x, y, judge: Judge, gen, optimistic, att_lp, def_lp):
    """Step 2 for GRPO: a judge score per defender response and per attacker rewrite."""
    faithful = x >= 0
    s3 = seeds[:, None].expand_as(k)
    yc = y.clamp(min=0)
    def_scores = judge.score(game.def_reward[s3[..., None], k[..., None], yc], gen)  # [N, A, D]
    shown = def_scores.argmax(-1, keepdim=True) if optimistic else torch.zeros_like(yc[..., :1])
    y_shown = yc.gather(-1, shown).squeeze(-1)
    att_scores = judge.score(game.att_reward[s3, k, y_shown], gen)  # unfaithful rows hold the patched −1
    fx = faithful[..., None].expand_as(y)
    x3 = x[..., None].expand_as(y)
    defender = Rollouts(x3[fx], y[fx], def_scores[fx], def_lp[x3[fx], y[fx]])
    attacker = Rollouts(
        s3.reshape(-1), k.reshape(-1), att_scores.reshape(-1), att_lp[s3.reshape(-1), k.reshape(-1)]
    )
    return attacker, defender


def preference_loss(player: TabularPlayer, pairs: Pairs, method: Method, reference, loss_beta: float):
    """Step 3, DPO/IPO: the project's per-pair loss, averaged over the pairs."""
    if pairs.context.numel() == 0:
        return torch.zeros((), dtype=torch.float64)
    lp = player.policy.log_probs()
    c, w, l = pairs.context, pairs.chosen, pairs.rejected
    fn = dpo_loss if method.loss == "dpo" else ipo_loss
    return fn(lp[c, w], lp[c, l], reference[c, w], reference[c, l], loss_beta).mean()


def policy_gradient_loss(player: TabularPlayer, rollouts: Rollouts, reference, beta: float):
    """Step 3, GRPO: batch-mean advantages, truncated IS weight (= 1 on-policy), k3 KL to π_ref."""
    adv, valid = grpo_advantages(rollouts.reward.tolist(), mode="batch")
    lp = player.policy.log_probs()[rollouts.context, rollouts.action][:, None]
    out = grpo_loss(
        lp,
        torch.ones_like(lp),
        adv.to(lp.dtype),
        beta=beta,
        sampler_logprobs=rollouts.sampler_logprob[:, None],
        ref_logprobs=reference[rollouts.context, rollouts.action][:, None],
        valid=valid,
    )
    return out.loss


# ---- a whole run ------------------------------------------------------------------------------------------
def train(
    game: TabularGame,
    method: Method | str,
    cfg: TrainConfig,
    judge_cfg: JudgeConfig,
    equilibrium: Equilibrium,
) -> Curves:
    """Train both players from (π_ref, ρ_ref) and record their distance to `equilibrium` over time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: intra-op threads only add contention
    try:
        return _train(
            game, METHODS[method] if isinstance(method, str) else method, cfg, judge_cfg, equilibrium
        )
    finally:
        torch.set_num_threads(threads)


def _train(
    game: TabularGame, method: Method, cfg: TrainConfig, judge_cfg: JudgeConfig, equilibrium: Equilibrium
):
    gen = torch.Generator().manual_seed(cfg.seed)
    attacker = TabularPlayer.create(
        "attacker", game.ref_att, ema_decay=cfg.ema_decay, optimizer=cfg.optimizer, lr=cfg.lr
    )
    defender = TabularPlayer.create(
        "defender", game.ref_def, ema_decay=cfg.ema_decay, optimizer=cfg.optimizer, lr=cfg.lr
    )
    low, high = game.reward_scale * float(game.att_score.min()), game.reward_scale * 10.0
    judge = make_judge(judge_cfg, method.loss, score_low=low, score_high=high)
    mix = cfg.anchor_mix
    loss_beta = method.loss_beta(judge, game.beta, mix)
    curves = Curves(method.name)
    schedules = [
        torch.optim.lr_scheduler.LambdaLR(p.optimizer, lambda t: _cosine(t, cfg.steps, cfg.lr_final_scale))
        for p in (attacker, defender)
    ]

    for step in range(cfg.steps + 1):
        if step % cfg.eval_every == 0 or step == cfg.steps:
            _record(curves, step, game, attacker, defender, equilibrium)
        if step == cfg.steps:
            break

        # 1. sample (sampler log-probs are read before any update: exactly on-policy for "current")
        att_sampler_lp = attacker.log_probs_of(method.sampler, mix)
        def_sampler_lp = defender.log_probs_of(method.sampler, mix)
        seeds, k, x, y = play(game, attacker, defender, method, cfg, gen, mix)

        # 2. judge, 3. losses against each player's reference
        att_ref = attacker.log_probs_of(method.reference, mix)
        def_ref = defender.log_probs_of(method.reference, mix)
        if method.loss == "grpo":
            att_roll, def_roll = pointwise_rollouts(
                game, seeds, k, x, y, judge, gen, cfg.optimistic, att_sampler_lp, def_sampler_lp
            )
            att_loss = policy_gradient_loss(attacker, att_roll, att_ref, loss_beta)
            def_loss = policy_gradient_loss(defender, def_roll, def_ref, loss_beta)
        else:
            att_pairs, def_pairs = preference_pairs(game, seeds, k, x, y, judge, gen, cfg.optimistic)
            att_loss = preference_loss(attacker, att_pairs, method, att_ref, loss_beta)
            def_loss = preference_loss(defender, def_pairs, method, def_ref, loss_beta)

        # 3. optimiser steps (the sequential baseline trains one player per block), then the EMAs
        turn = (step // cfg.sequential_block) % 2
        if method.schedule == "simultaneous" or turn == 0:
            attacker.step(att_loss)
        if method.schedule == "simultaneous" or turn == 1:
            defender.step(def_loss)
        attacker.end_step()
        defender.end_step()
        for schedule in schedules:
            with warnings.catch_warnings():  # the sequential baseline skips optimiser steps on purpose
                warnings.simplefilter("ignore", UserWarning)
                schedule.step()

    curves.rho, curves.pi = attacker.policy.probs(), defender.policy.probs()
    return curves


def _cosine(t: int, total: int, final: float) -> float:
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * min(t, total) / max(total, 1)))


def _record(curves: Curves, step: int, game, attacker, defender, eq: Equilibrium) -> None:
    rho, pi = attacker.policy.probs(), defender.policy.probs()
    curves.steps.append(step)
    curves.tv_attacker.append(tv_distance(rho, eq.rho))
    curves.tv_defender.append(tv_distance(pi, eq.pi))
    curves.exploitability.append(exploitability(game, rho, pi, beta=eq.beta).total)
