"""The rollout tree of one split: seeds -> the Attacker's rewrites -> the Defender's answers -> scores.

Every node carries a status; its reward is derived from the status and the judge's score:

    rewrite status        attacker reward        answer status     defender reward
    ok                    attacker-judge score   ok                defender-judge score
    truncated             -1                     truncated         -1
    parse_error           -1                     judge_failed      None (excluded)
    unfaithful            -1
    faith_judge_failed    None (excluded)
    no_valid_answer       None (excluded)
    judge_failed          None (excluded)

Judge scores lie in [0, 10], so −1 ranks every format or faithfulness failure below every judged sample.
None means "no signal": a judge that failed is never scored as a win or a loss for anyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from advgame.data.seeds import SeedPrompt
from advgame.game.attacker_io import ParsedRewrite
from advgame.policy.sampling import Completion

PENALTY = -1.0


class RewriteStatus(str, Enum):
    OK = "ok"
    TRUNCATED = "truncated"
    PARSE_ERROR = "parse_error"
    UNFAITHFUL = "unfaithful"
    FAITH_JUDGE_FAILED = "faith_judge_failed"
    NO_VALID_ANSWER = "no_valid_answer"
    JUDGE_FAILED = "judge_failed"


class AnswerStatus(str, Enum):
    OK = "ok"
    TRUNCATED = "truncated"
    JUDGE_FAILED = "judge_failed"


_REWRITE_PENALISED = {RewriteStatus.TRUNCATED, RewriteStatus.PARSE_ERROR, RewriteStatus.UNFAITHFUL}


@dataclass
class Answer:
    """One Defender answer y to a rewrite x."""

    completion: Completion
    status: AnswerStatus
    score: float | None = None  # defender-judge score against x

    @property
    def reward(self) -> float | None:
        if self.status == AnswerStatus.TRUNCATED:
            return PENALTY
        return self.score if self.status == AnswerStatus.OK else None


@dataclass
class Rewrite:
    """One Attacker rewrite x of a seed, and the Defender's answers to it (only when x is faithful)."""

    completion: Completion
    parsed: ParsedRewrite | None
    status: RewriteStatus
    answers: list[Answer] = field(default_factory=list)
    selected: int | None = None  # the answer that stands for this rewrite in the attacker judge
    score: float | None = None  # attacker-judge score of the selected answer, against the seed
    direct: bool = False  # the seed itself, answered by the Defender (game.direct_seeds); not the Attacker's

    @property
    def prompt(self) -> str | None:
        return self.parsed.prompt if self.parsed else None

    @property
    def reward(self) -> float | None:
        if self.status in _REWRITE_PENALISED:
            return PENALTY
        return self.score if self.status == RewriteStatus.OK else None


@dataclass
class SeedNode:
    """A seed s of class c and the Attacker's rewrites of it."""

    seed: SeedPrompt
    rewrites: list[Rewrite] = field(default_factory=list)

    @property
    def category(self) -> str:
        return self.seed.category


def rewrites(tree: list[SeedNode], attacker_only: bool = False) -> list[Rewrite]:
    """All rewrites of the tree; `attacker_only` leaves out the direct (seed-as-written) ones."""
    return [r for node in tree for r in node.rewrites if not (attacker_only and r.direct)]


def answers(tree: list[SeedNode]) -> list[Answer]:
    return [a for r in rewrites(tree) for a in r.answers]


def tree_records(tree: list[SeedNode], step: int, split: str) -> list[dict[str, Any]]:
    """One JSON-able record per seed, for the rollout log: seed -> rewrites -> answers -> scores."""
    return [
        {
            "step": step,
            "split": split,
            "seed": node.seed.text,
            "category": node.category,
            "rewrites": [
                {
                    "raw": r.completion.text,
                    "think": r.parsed.think if r.parsed else None,
                    "prompt": r.prompt,
                    "status": r.status.value,
                    "direct": r.direct,
                    "score": r.score,
                    "reward": r.reward,
                    "selected": r.selected,
                    "answers": [
                        {
                            "text": a.completion.text,
                            "status": a.status.value,
                            "score": a.score,
                            "reward": a.reward,
                        }
                        for a in r.answers
                    ],
                }
                for r in node.rewrites
            ],
        }
        for node in tree
    ]
