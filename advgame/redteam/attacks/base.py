"""What every attack shares: its budget, a meter of what it has spent, and the candidates it returns.

An attack runs on one behaviour at a time (`run(behavior, target)`) and returns one or more Candidates:
the prompt it would submit, the target's reply to it, and what that attempt cost. The runner classifies
each candidate with the success classifier; an attack never decides success itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from advgame.redteam.behaviors import Behavior
from advgame.targets import Target


@dataclass(frozen=True)
class Budget:
    """Per behaviour: at most `max_queries` target queries and `max_seconds` of wall time (checked between
    steps, so a step already under way finishes)."""

    max_queries: int = 20
    max_seconds: float = 300.0

    def as_dict(self) -> dict[str, Any]:
        return {"max_queries": self.max_queries, "max_seconds": self.max_seconds}


class Meter:
    """Counts the target queries and seconds one attack has spent on one behaviour."""

    def __init__(self, target: Target, budget: Budget):
        self.target, self.budget = target, budget
        self._q0, self._t0 = target.queries, time.monotonic()

    @property
    def queries(self) -> int:
        return self.target.queries - self._q0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def queries_left(self) -> int:
        return max(0, self.budget.max_queries - self.queries)

    def exhausted(self) -> bool:
        return self.queries_left() == 0 or self.elapsed >= self.budget.max_seconds


@dataclass
class Candidate:
    """One attempt: the prompt sent, the reply, its cost. `error` says why there is no usable reply
    ('attacker_parse': the attacker produced no prompt; a target error such as 'timeout')."""

    prompt: str | None
    response: str | None
    queries: int
    elapsed_s: float
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # attack-specific: score, iteration, loss, prunes ...


class Attack(Protocol):
    name: str

    def budget_info(self) -> dict[str, Any]:
        """The budget and sizes, as they go into the summary's `budget` field."""
        ...

    def run(self, behavior: Behavior, target: Target) -> list[Candidate]: ...
