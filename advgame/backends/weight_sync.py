"""Keep an external generation engine (vLLM, in-process or served) on a player's sampling weights.

The HF backend generates with the training model itself, so swapping the EMA in is enough. An engine
holds its own copy of the weights, so before each generation the player asks `EngineSync.sync(model, key)`
with the weights to sample from currently in `model` (EMA swapped in, or the live weights) and a key that
names them (('ema', n) or ('live', n)). A key already synced costs nothing; a new one is sent (a sharded
player's tensors are gathered whole first, on every process):

    LoRA player (peft model or shared-base view)  save the adapter under exchange_dir, engine.load_adapter
    full fine-tune, engine with push_weights       engine.push_weights(state_dict items)
    full fine-tune, engine with reload_weights     save safetensors under exchange_dir, engine.reload_weights

In the MD variants the sampler is the EMA, which moves once per game step: one sync per step. On-policy
variants sync after every update. The engines time-limit and fail-fast each sync (WeightSyncError).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from advgame.errors import ConfigError
from advgame.models.sharding import save_pretrained, whole_state_dict

log = logging.getLogger(__name__)


def is_adapter_model(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config")


class EngineSync:
    def __init__(self, backend: Any, name: str, exchange_dir: str | None = None, keep: int = 2):
        self.backend = backend
        self.name = name
        self.root = Path(exchange_dir) if exchange_dir else Path(tempfile.mkdtemp(prefix="advgame-exchange-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = keep  # versions kept on disk (a server may still be loading the previous one)
        self.synced_key: tuple | None = None
        self.version = 0
        self.last_seconds: float | None = None
        self.count = 0  # syncs sent, and their total seconds (the trainer logs them per step)
        self.total_seconds = 0.0

    def sync(self, model: torch.nn.Module, key: tuple) -> float | None:
        """Send `model`'s current weights to the engine unless `key` is what it already holds."""
        self.wake()  # an engine released for the last update generates again
        if key == self.synced_key:
            return None
        t0 = time.perf_counter()
        self.version += 1
        if is_adapter_model(model):
            target = self._fresh_dir()
            save_pretrained(model, target)
            self.backend.load_adapter(str(target), name=self.name)
        else:
            weights = whole_state_dict(model) or model.state_dict()  # gathered whole when sharded
            if hasattr(self.backend, "push_weights"):
                self.backend.push_weights(weights.items())
            else:  # a server: the weights go through a directory it can read
                from advgame.backends.vllm_weight_channel import save_weights

                self.backend.reload_weights(str(save_weights(weights.items(), self._fresh_dir())))
        self.synced_key = key
        self.last_seconds = time.perf_counter() - t0
        self.count += 1
        self.total_seconds += self.last_seconds
        log.info("%s: engine synced to %s in %.2f s", self.name, key, self.last_seconds)
        return self.last_seconds

    def release(self) -> None:
        """Free the engine's accelerator memory while the trainer updates (engines with sleep mode)."""
        if hasattr(self.backend, "sleep") and not getattr(self.backend, "asleep", False):
            self.backend.sleep()

    def wake(self) -> None:
        if getattr(self.backend, "asleep", False):
            self.backend.wake_up()

    def _fresh_dir(self) -> Path:
        target = self.root / f"{self.name}-v{self.version:06d}"
        target.mkdir(parents=True, exist_ok=True)
        for old in sorted(self.root.glob(f"{self.name}-v*"))[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM (0.32) accepts


def vllm_lora_rank(rank: int, configured: int | None = None) -> int:
    """The engine's max_lora_rank: the smallest rank vLLM accepts that holds `rank` (and `configured`)."""
    need = max(rank, configured or 0)
    for allowed in VLLM_LORA_RANKS:
        if allowed >= need:
            return allowed
    raise ConfigError(f"LoRA rank {need} is above the largest rank vLLM serves ({VLLM_LORA_RANKS[-1]})")


def build_engine(model_cfg, tokenizer, name: str, seed: int) -> Any:
    """The configured vLLM engine backend for one player (imports vLLM lazily)."""
    engine = model_cfg.engine
    lora = model_cfg.finetune == "lora"
    if engine.kind == "vllm":
        from advgame.backends.vllm_engine import VLLMEngineBackend

        return VLLMEngineBackend(
            model_cfg.path,
            tokenizer=tokenizer,
            dtype=model_cfg.compute_dtype or model_cfg.dtype,
            seed=seed,
            gpu_memory_utilization=engine.gpu_memory_utilization,
            kv_cache_gib=engine.kv_cache_gib,
            enable_sleep_mode=engine.enable_sleep_mode,
            enable_lora=lora,
            max_lora_rank=vllm_lora_rank(model_cfg.lora.r, engine.max_lora_rank) if lora else 16,
            sync_timeout_s=engine.sync_timeout_s,
            name=f"vllm:{name}",
        )
    if engine.kind == "vllm_server":
        from advgame.backends.vllm_server import VLLMServerBackend

        if not engine.base_urls:
            raise ConfigError(f"{name}.engine.kind=vllm_server needs {name}.engine.base_urls")
        return VLLMServerBackend(
            engine.base_urls,
            engine.served_model or model_cfg.path,
            tokenizer,
            api_key_env=engine.api_key_env,
            sync_timeout_s=engine.sync_timeout_s,
            name=f"vllm-server:{name}",
        )
    raise ConfigError(f"unknown engine kind {engine.kind!r}")
