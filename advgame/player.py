"""A player of the game: a trainable model, its tokenizer, its optimiser, and which weights sample and
which score.

    variant            sampling weights       loss reference
    MD (EMA on)        EMA θ̄                  EMA θ̄
    on-policy          current θ              frozen initial θ₀
    (GRPO: current θ sampling, initial θ₀ reference, EMA still tracked for checkpoints)
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase

from advgame.backends.base import GenerationBackend
from advgame.backends.hf import HFBackend
from advgame.backends.weight_sync import EngineSync
from advgame.config.schema import EMAConfig, ModelConfig
from advgame.ema import ParamBank, ParamEMA
from advgame.models.loading import load_model
from advgame.models.sharding import gathered, is_sharded


@dataclass
class Player:
    name: str
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    ema_cfg: EMAConfig
    ema: ParamEMA | None = field(default=None)
    initial: ParamBank | None = field(default=None)
    backend: GenerationBackend | None = field(default=None)  # how this player's text is generated
    optimizer: torch.optim.Optimizer | None = field(default=None)
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = field(default=None)
    engine_sync: EngineSync | None = field(
        default=None
    )  # set when `backend` is an engine with its own weights
    updates: int = 0  # optimiser steps taken by this process (names the live weights for engine syncs)

    def __post_init__(self) -> None:
        if self.ema_cfg.enabled and self.ema is None:
            self.ema = ParamEMA(self.model, self.ema_cfg.decay)
        if not self.ema_cfg.ema_as_reference and self.initial is None:
            self.initial = ParamBank(self.model)
        if self.backend is None:
            self.backend = HFBackend(self.model, self.tokenizer, name=self.name)

    @classmethod
    def load(cls, name: str, model_cfg: ModelConfig, ema_cfg: EMAConfig) -> Player:
        model, tokenizer = load_model(model_cfg)
        return cls(name=name, model=model, tokenizer=tokenizer, ema_cfg=ema_cfg)

    @contextmanager
    def sampling_weights(self):
        """`with player.sampling_weights(): generate(...)` samples from the EMA in the MD variants (and an
        external engine is brought onto those weights first)."""
        use_ema = self.ema is not None and self.ema_cfg.sample_from_ema
        with self.ema.swapped_in(self.model) if use_ema else nullcontext(self.model):
            key = ("ema", self.ema.num_updates) if use_ema else ("live", self.updates)
            with self._generating(key):
                yield self.model

    @contextmanager
    def current_weights(self):
        """`with player.current_weights(): generate(...)` generates with the live (trained) weights."""
        with self._generating(("live", self.updates)):
            yield self.model

    @contextmanager
    def _generating(self, key: tuple):
        """An engine is brought onto the weights in the model; in-process generation runs on the model,
        gathered whole when it is sharded."""
        if self.engine_sync is None:
            with self.gathered():
                yield
            return
        self.engine_sync.sync(self.model, key)
        yield

    @property
    def is_sharded(self) -> bool:
        return is_sharded(self.model)

    def gathered(self):
        """`with player.gathered(): ...`: the whole model on this process (a sharded player is all-gathered
        once; every process must enter). A no-op for a player that is not sharded."""
        return gathered(self.model)

    def reference_weights(self):
        """`with torch.no_grad(), player.reference_weights(): ...` scores with the loss reference."""
        if self.ema_cfg.ema_as_reference:
            assert self.ema is not None
            return self.ema.swapped_in(self.model)
        assert self.initial is not None
        return self.initial.swapped_in(self.model)

    def end_step(self) -> None:
        """Called once per game step, after both splits: move the EMA towards the current weights."""
        if self.ema is not None:
            self.ema.update(self.model)
