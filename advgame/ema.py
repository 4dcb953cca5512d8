"""Parameter banks: an EMA of a model's trainable weights, and a frozen snapshot of them.

    EMA update (once per game step):   θ̄ ← d·θ̄ + (1−d)·θ

Only parameters with requires_grad are stored, so with LoRA the EMA (and the initial snapshot) cost
adapter-size memory: the frozen base is shared. To *use* the bank (sample from the EMA, or score with it
as the loss reference) its tensors are swapped into the live model for the duration of a `with` block by
exchanging storage pointers: no copy, and the model's own weights come back on exit, even on error.
A sharded (FSDP) model's parameters are DTensor shards whose storage FSDP owns: the bank then holds shards
too, and swaps them by copying in place, shard by shard, with no communication.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from advgame.models.sharding import is_dtensor, load_whole_, local


class ParamBank:
    """A frozen copy of a model's trainable parameters, swappable into the model."""

    def __init__(self, model: torch.nn.Module):
        self.tensors: dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad
        }
        if not self.tensors:
            raise ValueError("model has no trainable parameters to track")

    def _params(self, model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        params = dict(model.named_parameters())
        missing = self.tensors.keys() - params.keys()
        if missing:
            raise KeyError(f"model lacks tracked parameters: {sorted(missing)[:3]}")
        return {name: params[name] for name in self.tensors}

    @contextmanager
    def swapped_in(self, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """Run the model with this bank's weights inside the block."""
        params = self._params(model)
        self._swap(params)
        try:
            yield model
        finally:
            self._swap(params)

    @torch.no_grad()
    def _swap(self, params: dict[str, torch.nn.Parameter]) -> None:
        for name, p in params.items():
            if is_dtensor(p):  # FSDP gathers from its own buffer, which the shard views: swap values in place
                mine, theirs = local(p), local(self.tensors[name])
                held = mine.clone()
                mine.copy_(theirs)
                theirs.copy_(held)
            else:
                p.data, self.tensors[name] = self.tensors[name], p.data

    def num_bytes(self) -> int:
        """Bytes this process holds (its shards, when sharded)."""
        return sum(local(t).numel() * t.element_size() for t in self.tensors.values())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.tensors)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state.keys() != self.tensors.keys():
            raise KeyError("state does not match the tracked parameters")
        for name, t in state.items():  # whole tensors (a checkpoint), laid out like the bank's own
            load_whole_(self.tensors[name], t)


class ParamEMA(ParamBank):
    """Exponential moving average of a model's trainable parameters, initialised to their current values."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        super().__init__(model)
        self.decay = decay
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """θ̄ ← d·θ̄ + (1−d)·θ, i.e. θ̄.lerp_(θ, 1−d), for every tracked tensor."""
        params = self._params(model)
        shadows = [local(t) for t in self.tensors.values()]
        current = [local(params[name].detach()).to(t.dtype) for name, t in self.tensors.items()]
        torch._foreach_lerp_(shadows, current, 1.0 - self.decay)
        self.num_updates += 1
