"""The testbed's judges: pairwise verdicts and pointwise scores computed from the payoff table.

Pairwise: the probability that the judge prefers item a over item b (rewards R_a, R_b in reward units) is

    "bt"      σ(R_a − R_b)                       Bradley–Terry: the paper's definition of the rewards (§1.2)
    "linear"  ½ + (R_a − R_b)/(2·span)           linear in the reward gap; span = the game's reward range,
                                                 the steepest slope that keeps P in [0, 1]
    "hard"    1 if R_a > R_b, 0 if R_a < R_b      the authors' code: two exact scores, chosen = argmax;
              (ties produce no pair)

and the verdict is drawn from it. Why several links: each preference loss is consistent for the reward
game's equilibrium π* ∝ π_ref·exp(R/β) under one preference model only. DPO is the Bradley–Terry maximum
likelihood: at rest β_loss·Δlog(π/π_ref) = logit P, which is g·ΔR for P = σ(g·ΔR). IPO regresses
Δlog(π/π_ref) onto (2P − 1)/(2β_loss), which is proportional to ΔR only when P is linear in ΔR. So
"matched" (the default) gives DPO the BT judge and IPO the linear one, and each loss gets the β that
makes its rest point π* at the game's β (`loss_beta`): DPO β_loss = β·(logit slope), IPO β_loss =
β·(probability slope). Other pairings use the same first-order rule and are biased; hard verdicts carry
only the order of the rewards, so no loss recovers π* from them (there we keep the BT rule).

Noise ν: with probability ν the judging pipeline answers at random (a fair-coin verdict, or a score drawn
uniformly from the patched range [unfaithful score, 10]). In expectation this scales every reward gap by
(1 − ν), i.e. it is the game at β/(1 − ν) (exactly for pointwise scores and the linear link).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Link = Literal["matched", "bt", "linear", "hard"]


@dataclass
class JudgeConfig:
    """How payoff-table rewards become training signal."""

    link: Link = "matched"
    """Pairwise preference model: matched (bt for DPO, linear for IPO),
    bt, linear or hard (see module doc)."""
    noise: float = 0.0
    """Probability that a verdict or a score is replaced by a random one."""


@dataclass
class Judge:
    link: Literal["bt", "linear", "hard"]
    noise: float
    score_low: float  # patched range, reward units
    score_high: float

    @property
    def span(self) -> float:
        return self.score_high - self.score_low

    def loss_beta(self, beta: float, loss: str) -> float:
        """β of the preference loss whose rest point is π* of the game at β (first order in ΔR, exact for
        DPO + bt and IPO + linear). DPO: β·d logit P/dΔR; IPO: β·dP/dΔR, both at ΔR = 0."""
        if loss == "dpo":
            return beta * (2.0 / self.span if self.link == "linear" else 1.0)
        if loss == "ipo":
            return beta * (0.5 / self.span if self.link == "linear" else 0.25)
        return beta

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise < 1.0:
            raise ValueError(f"judge noise must be in [0, 1), got {self.noise}")

    def preference(self, r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
        """P(a ≻ b), noise included."""
        diff = r_a - r_b
        if self.link == "bt":
            p = torch.sigmoid(diff)
        elif self.link == "linear":
            p = (0.5 + diff / (2.0 * self.span)).clamp(0.0, 1.0)
        elif self.link == "hard":
            p = (diff > 0).to(diff.dtype) + 0.5 * (diff == 0).to(diff.dtype)
        else:
            raise ValueError(f"unknown link '{self.link}'")
        return (1.0 - self.noise) * p + 0.5 * self.noise

    def verdict(self, r_a: torch.Tensor, r_b: torch.Tensor, generator: torch.Generator):
        """(a_wins, usable): one sampled verdict per pair; hard-link ties are not usable (no pair)."""
        a_wins = torch.rand(r_a.shape, generator=generator, dtype=r_a.dtype) < self.preference(r_a, r_b)
        usable = torch.ones_like(a_wins) if self.link != "hard" else r_a != r_b
        return a_wins, usable

    def score(self, reward: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Pointwise score in reward units: exact, or uniform over the patched range with probability ν."""
        if self.noise == 0.0:
            return reward
        shape, dtype = reward.shape, reward.dtype
        replaced = torch.rand(shape, generator=generator, dtype=dtype) < self.noise
        random = self.score_low + (self.score_high - self.score_low) * torch.rand(
            shape, generator=generator, dtype=dtype
        )
        return torch.where(replaced, random, reward)


def make_judge(cfg: JudgeConfig, loss: str, *, score_low: float, score_high: float) -> Judge:
    link = cfg.link
    if link == "matched":
        link = "linear" if loss == "ipo" else "bt"
    return Judge(link=link, noise=cfg.noise, score_low=score_low, score_high=score_high)
