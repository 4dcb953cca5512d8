"""The console view of a run: a progress bar with step, ETA, rewards and pair counts, and validation lines."""

from __future__ import annotations

import math
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _fmt(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


class TrainProgress:
    def __init__(self, total: int, start: int, enabled: bool = True):
        self.console = Console(stderr=True)
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]step"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=self.console,
            disable=not enabled,
        )
        self.task = self.progress.add_task("", total=total, completed=start)

    def __enter__(self) -> Self:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def step(self, done: int, m: dict) -> None:
        pairs = "rollouts" if any(k.endswith("/rollouts") for k in m) else "pairs"
        desc = (
            f"att r {_fmt(m.get('harmful/attacker/reward'))}/{_fmt(m.get('benign/attacker/reward'))} "
            f"def r {_fmt(m.get('harmful/defender/reward'))}/{_fmt(m.get('benign/defender/reward'))} "
            f"{pairs} a{int(m.get(f'harmful/attacker/{pairs}', 0) + m.get(f'benign/attacker/{pairs}', 0))}"
            f" d{int(m.get(f'harmful/defender/{pairs}', 0) + m.get(f'benign/defender/{pairs}', 0))}"
        )
        self.progress.update(self.task, completed=done, description=desc)

    def validation(self, m: dict) -> None:
        if not m or not self.enabled:
            return
        self.progress.console.print(
            f"validation: harmful refusal-or-deflection {_fmt(m.get('harmful/refusal_rate'))}, "
            f"benign compliance {_fmt(m.get('benign/compliance_rate'))} ({m.get('classifier', '')})"
        )
