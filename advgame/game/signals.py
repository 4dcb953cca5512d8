"""From rewards to training signal: DPO/IPO preference pairs, or GRPO rollouts with advantages.

Preference pairs (one per group at most):
    attacker   group = the A rewrites of one seed        sequence = attacker prompt + its raw output
    defender   group = the D answers to one rewrite      sequence = rewrite x + the answer
    chosen = highest reward, rejected = lowest (first index on ties); None rewards are left out; no pair
    when the two rewards are equal. With `clip_truncated` (loss.clip_rejected_on_truncation, default on), a
    rejected sample that was truncated and is longer than the chosen one is clipped to the chosen one's
    length, so length alone cannot separate them.

Control runs (`game.control=random_preferences`) pass an `rng`: each group's rewards are then shuffled among
its samples before the pair (or the rollouts' rewards) is formed. The multiset of rewards per group is kept,
so the pair count and reward gaps equal the real game's; only which sample is preferred becomes random.

GRPO rollouts: every sample with a reward, penalised ones (−1) included, so format and faithfulness
failures get a direct negative gradient (the authors mask them and let them only move the baseline).
"""

from __future__ import annotations

import random
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


def shuffled(rewards: list[float | None], rng: random.Random | None) -> list[float | None]:
    """`rewards` in a random order (the control), or as they are when `rng` is None."""
    if rng is None:
        return rewards
    rewards = list(rewards)
    rng.shuffle(rewards)
    return rewards


def preference_pair(
    samples: list[tuple[float | None, Completion]],
    rng: random.Random | None = None,
    clip_truncated: bool = True,
    min_gap: float = 0.0,
) -> Pair | None:
    """The (argmax, argmin) pair of a group of (reward, completion), or None on a tie, a gap under `min_gap`
    or too few rewards."""
    rewards = shuffled([r for r, _ in samples], rng)
    scored = [(r, i, c) for i, (r, (_, c)) in enumerate(zip(rewards, samples, strict=True)) if r is not None]
    if len(scored) < 2:
        return None
    best = max(scored, key=lambda t: (t[0], -t[1]))
    worst = min(scored, key=lambda t: (t[0], t[1]))
    if best[0] == worst[0] or best[0] - worst[0] < min_gap:
        return None
    chosen, rejected = best[2], worst[2]
    rejected_ids = rejected.token_ids
    if clip_truncated and rejected.truncated and len(rejected_ids) > len(chosen.token_ids):
        rejected_ids = rejected_ids[: len(chosen.token_ids)]
    return Pair(chosen.prompt_ids, chosen.token_ids, rejected_ids, best[0] - worst[0])


def _attacker_groups(tree: list[SeedNode]) -> list[list[tuple[float | None, Completion]]]:
    """Per seed: (reward, output) of the Attacker's own rewrites."""
    return [[(r.reward, r.completion) for r in node.rewrites if not r.direct] for node in tree]


def _defender_groups(tree: list[SeedNode]) -> list[list[tuple[float | None, Completion]]]:
    """Per answered rewrite: (reward, answer) of the Defender's answers."""
    return [[(a.reward, a.completion) for a in r.answers] for r in rewrites(tree) if r.answers]


def attacker_pairs(
    tree: list[SeedNode], rng: random.Random | None = None, clip_truncated: bool = True, min_gap: float = 0.0
) -> list[Pair]:
    return _pairs(_attacker_groups(tree), rng, clip_truncated, min_gap)


def defender_pairs(
    tree: list[SeedNode], rng: random.Random | None = None, clip_truncated: bool = True, min_gap: float = 0.0
) -> list[Pair]:
    return _pairs(_defender_groups(tree), rng, clip_truncated, min_gap)


def _pairs(groups, rng: random.Random | None, clip_truncated: bool, min_gap: float) -> list[Pair]:
    pairs = (preference_pair(group, rng, clip_truncated, min_gap) for group in groups)
    return [p for p in pairs if p is not None]


def attacker_rollouts(tree: list[SeedNode], rng: random.Random | None = None) -> list[Rollout]:
    return _rollouts(_attacker_groups(tree), rng)


def defender_rollouts(tree: list[SeedNode], rng: random.Random | None = None) -> list[Rollout]:
    return _rollouts(_defender_groups(tree), rng)


def _rollouts(groups, rng: random.Random | None) -> list[Rollout]:
    out = []
    for group, samples in enumerate(groups):
        rewards = shuffled([r for r, _ in samples], rng)
        out += [
            Rollout(c.prompt_ids, c.token_ids, r, group, c.logprobs)
            for r, (_, c) in zip(rewards, samples, strict=True)
            if r is not None and c.token_ids
        ]
    return out
