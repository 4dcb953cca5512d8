"""Scoring the rollout tree: the Defender judge, optimistic selection, the Attacker judge.

    seed class   defender judge (query = rewrite x)    attacker judge (query = seed s)
    harmful      deflection                            compliance
    benign       compliance                            refusal (short and outright)

In pairwise mode a group of candidates (the answers to one rewrite, or the selected answers of one
seed's rewrites) is judged two at a time, every unordered pair once, in index order; a lone candidate is
judged against itself. A candidate's score is the mean of the scores it received; a candidate whose
every call failed gets None. Pointwise mode scores each candidate alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from advgame.game.tree import AnswerStatus, RewriteStatus, SeedNode, rewrites
from advgame.judges.base import Judge, PairItem, PointItem, Rubric

JudgeMode = Literal["pairwise", "pointwise"]

DEFENDER_RUBRIC: dict[str, Rubric] = {"harmful": "deflection", "benign": "compliance"}
ATTACKER_RUBRIC: dict[str, Rubric] = {"harmful": "compliance", "benign": "refusal"}


@dataclass(frozen=True)
class RoleJudge:
    """A judge and the way the game asks it (pairwise or pointwise)."""

    judge: Judge
    mode: JudgeMode


@dataclass(frozen=True)
class Group:
    """Candidates judged together: answers to `query`, scored under `rubric`."""

    rubric: Rubric
    query: str
    candidates: Sequence[str]


def score_groups(role: RoleJudge, groups: Sequence[Group]) -> list[list[float | None]]:
    """Per group, per candidate: the mean judge score, or None if no call about it succeeded."""
    if role.mode == "pointwise":
        items = [PointItem(g.rubric, g.query, c) for g in groups for c in g.candidates]
        flat = iter(role.judge.score_points(items))
        return [[next(flat) for _ in g.candidates] for g in groups]

    index: list[tuple[int, int, int]] = []  # (group, i, j) per call
    items: list[PairItem] = []
    for gi, g in enumerate(groups):
        pairs = [(0, 0)] if len(g.candidates) == 1 else list(combinations(range(len(g.candidates)), 2))
        for i, j in pairs:
            index.append((gi, i, j))
            items.append(PairItem(g.rubric, g.query, g.candidates[i], g.candidates[j]))
    received: list[list[list[float]]] = [[[] for _ in g.candidates] for g in groups]
    for (gi, i, j), result in zip(index, role.judge.score_pairs(items), strict=True):
        if result is not None:
            received[gi][i].append(result[0])
            received[gi][j].append(result[1])
    return [[sum(s) / len(s) if s else None for s in group] for group in received]


def judge_answers(tree: list[SeedNode], role: RoleJudge) -> None:
    """Step 4: the Defender judge scores every finished answer against the rewrite it answers."""
    todo = [(node, r) for node in tree for r in node.rewrites if r.status == RewriteStatus.OK]
    groups, members = [], []
    for node, rewrite in todo:
        ok = [a for a in rewrite.answers if a.status == AnswerStatus.OK]
        groups.append(Group(DEFENDER_RUBRIC[node.category], rewrite.prompt, [a.completion.text for a in ok]))
        members.append(ok)
    for answers, scores in zip(members, score_groups(role, groups), strict=True):
        for answer, score in zip(answers, scores, strict=True):
            answer.score = score
            if score is None:
                answer.status = AnswerStatus.JUDGE_FAILED


def select_answers(tree: list[SeedNode], optimistic: bool) -> None:
    """Step 5a: pick the answer that stands for each rewrite in the Attacker's payoff.

    Optimistic: the Defender's best-judged answer (an empirical stand-in for its best response).
    Otherwise (the non-optimistic ablation): the first answer that was judged, i.e. one random sample
    among the valid ones; a truncated answer or one whose judgement failed is never selected. Either way,
    when no answer could be judged nothing is selected and the rewrite gets no reward. (The authors' code
    then falls back to an unjudged answer, whose attacker reward it patches to 0: a quirk not reproduced.)
    """
    for rewrite in rewrites(tree):
        if rewrite.status != RewriteStatus.OK:
            continue
        judged = [
            (a.score, -i)
            for i, a in enumerate(rewrite.answers)
            if a.status == AnswerStatus.OK and a.score is not None
        ]
        if optimistic:
            rewrite.selected = -max(judged)[1] if judged else None
        else:
            rewrite.selected = -judged[0][1] if judged else None
        if rewrite.selected is None:
            rewrite.status = RewriteStatus.JUDGE_FAILED


def judge_attacks(tree: list[SeedNode], role: RoleJudge | None) -> None:
    """Step 5b: the Attacker judge scores each rewrite's selected answer against the original seed.

    With no attacker judge (the fixed-attacker ablation), every valid rewrite scores 0.
    """
    groups, members = [], []
    for node in tree:
        valid = [r for r in node.rewrites if r.status == RewriteStatus.OK and not r.direct]
        if not valid:
            continue
        if role is None:
            for r in valid:
                r.score = 0.0
            continue
        texts = [r.answers[r.selected].completion.text for r in valid]
        groups.append(Group(ATTACKER_RUBRIC[node.category], node.seed.text, texts))
        members.append(valid)
    if not groups:
        return
    for valid, scores in zip(members, score_groups(role, groups), strict=True):
        for rewrite, score in zip(valid, scores, strict=True):
            rewrite.score = score
            if score is None:
                rewrite.status = RewriteStatus.JUDGE_FAILED
