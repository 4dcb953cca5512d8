"""From rewards to training signal: DPO/IPO preference pairs, or GRPO rollouts with advantages.

Preference pairs (one per group at most):
    attacker   group = the A rewrites of one seed        sequence = attacker prompt + its raw output
    defender   group = the D answers to one rewrite      sequence = rewrite x + the answer
    chosen = highest reward, rejected = lowest (first index on ties); None rewards are left out; no pair
    when the two rewards are equal. With `clip_truncated` (loss.clip_rejected_on_truncation, default on), a
    rejected sample that was truncated and is longer than the chosen one is clipped to the chosen one's
    length, so length alone cannot separate them.

GRPO rollouts: every sample with a reward, penalised ones (−1) included, so format and faithfulness
failures get a direct negative gradient (the authors mask them and let them only move the baseline).
"""

from __future__ import annotations

from dataclasses import dataclass

from advgame.game.tree import SeedNode, rewrites
from advgame.policy.sampling import Completion


@dataclass
class Pair:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    reward_gap: float


@dataclass
class Rollout:
    prompt_ids: list[int]
    completion_ids: list[int]
    reward: float
    group: int
    sampler_logprobs: list[float] | None


def preference_pair(samples: list[tuple[float | None, Completion]], clip_truncated: bool = True) -> Pair | None:
    """The (argmax, argmin) pair of a group of (reward, completion), or None on a tie or too few rewards."""
    scored = [(r, i, c) for i, (r, c) in enumerate(samples) if r is not None]
    if len(scored) < 2:
        return None
    best = max(scored, key=lambda t: (t[0], -t[1]))
    worst = min(scored, key=lambda t: (t[0], t[1]))
    if best[0] == worst[0]:
        return None
    chosen, rejected = best[2], worst[2]
    rejected_ids = rejected.token_ids
    if clip_truncated and rejected.truncated and len(rejected_ids) > len(chosen.token_ids):
        rejected_ids = rejected_ids[: len(chosen.token_ids)]
    return Pair(chosen.prompt_ids, chosen.token_ids, rejected_ids, best[0] - worst[0])


def attacker_pairs(tree: list[SeedNode], clip_truncated: bool = True) -> list[Pair]:
    pairs = (preference_pair([(r.reward, r.completion) for r in node.rewrites if not r.direct], clip_truncated)
             for node in tree)
    return [p for p in pairs if p is not None]


def defender_pairs(tree: list[SeedNode], clip_truncated: bool = True) -> list[Pair]:
    pairs = (preference_pair([(a.reward, a.completion) for a in r.answers], clip_truncated)
             for r in rewrites(tree) if r.answers)
    return [p for p in pairs if p is not None]


def attacker_rollouts(tree: list[SeedNode]) -> list[Rollout]:
    return [
        Rollout(r.completion.prompt_ids, r.completion.token_ids, r.reward, group, r.completion.logprobs)
        for group, node in enumerate(tree)
        for r in node.rewrites
        if not r.direct and r.reward is not None and r.completion.token_ids
    ]


def defender_rollouts(tree: list[SeedNode]) -> list[Rollout]:
    answered = [r for r in rewrites(tree) if r.answers]
    return [
        Rollout(a.completion.prompt_ids, a.completion.token_ids, a.reward, group, a.completion.logprobs)
        for group, r in enumerate(answered)
        for a in r.answers
        if a.reward is not None and a.completion.token_ids
    ]
