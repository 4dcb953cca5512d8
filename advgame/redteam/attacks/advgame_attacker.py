"""The trained AdvGame Attacker as a single-shot red-teamer: N independent rewrites per behaviour.

The attacker model (e.g. RUN/final/attacker_ema, or any chat model) gets the game's own instruction
(`advgame.game.attacker_io.attacker_instruction`, harmful class) and format; each of its `samples`
answers is parsed strictly and the rewrite is sent to the target once. An answer that breaks the format
sends nothing and is an attempt that failed ('attacker_parse'). No feedback, no search: this measures
what the trained policy does in one shot.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from advgame.backends.base import GenerationBackend
from advgame.config.schema import SamplingConfig
from advgame.game.attacker_io import AttackerFormat, attacker_instruction, parse_attacker_output
from advgame.redteam.attacks.base import Budget, Candidate, Meter
from advgame.redteam.behaviors import Behavior
from advgame.targets import Target


@dataclass
class AdvGameAttack:
    backend: GenerationBackend
    sampling: SamplingConfig
    budget: Budget
    samples: int = 4
    fmt: AttackerFormat = "nothink"
    seed: int = 0
    name: str = "advgame"

    def budget_info(self) -> dict:
        return {
            **self.budget.as_dict(),
            "samples": self.samples,
            "attacker": self.backend.name,
            "attacker_format": self.fmt,
        }

    def run(self, behavior: Behavior, target: Target) -> list[Candidate]:
        meter = Meter(target, self.budget)
        instruction = attacker_instruction(behavior.text, "harmful", self.fmt)
        seed = random.Random(f"{self.seed}:{behavior.id}").randrange(2**31)
        outs = self.backend.generate([instruction], self.sampling, num_samples=self.samples, seed=seed)
        parsed = [None if o.error else parse_attacker_output(o.text, self.fmt) for o in outs]
        send = [i for i, p in enumerate(parsed) if p is not None][: meter.queries_left()]
        replies = dict(zip(send, target.chat([parsed[i].prompt for i in send]), strict=True))
        share = meter.elapsed / max(1, len(outs))
        out = []
        for i, p in enumerate(parsed):
            info = {"sample": i}
            if p is None:
                out.append(
                    Candidate(
                        None, None, 0, share, error="attacker_parse", info={**info, "raw": outs[i].text}
                    )
                )
            elif i not in replies:
                out.append(Candidate(p.prompt, None, 0, share, error="budget", info=info))
            else:
                r = replies[i]
                out.append(Candidate(p.prompt, r.text, 1, share, error=r.error, info=info))
        return out
