"""Tabular softmax policies, and a player = policy + EMA + frozen initial weights + optimiser.

Each policy is an `nn.Module` holding one logits Parameter [contexts, actions], so the project's own
`ParamEMA` (θ̄ ← d·θ̄ + (1−d)·θ) and `ParamBank` (frozen θ₀ = π_ref) work on it unchanged: to read the EMA
or the initial policy, their weights are swapped into the module, exactly as the LM trainer does.

Which weights sample and which serve as the loss reference (`Anchor`):

    "current"   π_θ                                     (on-policy sampling)
    "initial"   π_ref = π_θ₀                            (fixed reference)
    "ema"       π̄ = softmax(θ̄)                          (the authors' MD: samples and reference)
    "mixture"   π̄^(1−η) · π_ref^η, normalised           (Nash-MD's geometric-mixture anchor)

As a loss reference the mixture's normaliser is irrelevant (it is the same for the chosen and the rejected
completion of a pair, which share their context), so for an LM it is simply
(1−η)·log π̄(y|x) + η·log π_ref(y|x): two reference forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from advgame.ema import ParamBank, ParamEMA

Anchor = Literal["current", "initial", "ema", "mixture"]


class TabularPolicy(torch.nn.Module):
    """π(a|c) = softmax(logits[c])."""

    def __init__(self, init_probs: torch.Tensor):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.log(init_probs.to(torch.float64)).clone())

    def log_probs(self) -> torch.Tensor:
        """[C, A], differentiable."""
        return torch.log_softmax(self.logits, dim=-1)

    def probs(self) -> torch.Tensor:
        return torch.softmax(self.logits.detach(), dim=-1)


@dataclass
class TabularPlayer:
    name: str
    policy: TabularPolicy
    ema: ParamEMA
    initial: ParamBank
    optimizer: torch.optim.Optimizer

    @classmethod
    def create(cls, name: str, init_probs: torch.Tensor, *, ema_decay: float, optimizer: str, lr: float):
        policy = TabularPolicy(init_probs)
        if optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(policy.parameters(), lr=lr, betas=(0.9, 0.95))
        elif optimizer == "sgd":
            opt = torch.optim.SGD(policy.parameters(), lr=lr)
        else:
            raise ValueError(f"unknown optimizer '{optimizer}' (allowed: adam, sgd)")
        return cls(name, policy, ParamEMA(policy, ema_decay), ParamBank(policy), opt)

    @torch.no_grad()
    def _bank_log_probs(self, bank: ParamBank) -> torch.Tensor:
        with bank.swapped_in(self.policy):
            return self.policy.log_probs().clone()

    @torch.no_grad()
    def log_probs_of(self, anchor: Anchor, mix: float = 0.0) -> torch.Tensor:
        """Detached log-probs [C, A] of the chosen weights, normalised (the mixture is renormalised)."""
        if anchor == "current":
            return self.policy.log_probs().detach().clone()
        if anchor == "initial":
            return self._bank_log_probs(self.initial)
        if anchor == "ema":
            return self._bank_log_probs(self.ema)
        if anchor == "mixture":
            mixed = (1.0 - mix) * self._bank_log_probs(self.ema) + mix * self._bank_log_probs(self.initial)
            return torch.log_softmax(mixed, dim=-1)
        raise ValueError(f"unknown anchor '{anchor}'")

    def sample(
        self, anchor: Anchor, contexts: torch.Tensor, n: int, generator: torch.Generator, mix: float = 0.0
    ):
        """n i.i.d. actions per context from the chosen weights: [len(contexts), n] long."""
        probs = torch.exp(self.log_probs_of(anchor, mix))[contexts]
        return torch.multinomial(probs, n, replacement=True, generator=generator)

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            self.optimizer.step()

    def end_step(self) -> None:
        """Once per game step: θ̄ ← d·θ̄ + (1−d)·θ."""
        self.ema.update(self.policy)
