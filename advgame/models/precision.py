"""Mixed precision: float32 master weights, 16-bit compute.

    stored in the player's `dtype` (float32 in the paper presets)
        weights (the masters), their gradients, AdamW moments, EMA bank, initial snapshot, checkpoints
    computed in the player's `compute_dtype` (bfloat16 in the paper presets)
        replicated player: every forward of the transformers model runs under torch.autocast, so matmuls
                           run in bf16 while reductions autocast keeps in fp32 (softmax, norms, losses);
                           backward follows the forward's dtypes and leaves float32 gradients on the
                           float32 weights
        sharded player:    FSDP2's MixedPrecisionPolicy gathers the float32 shards as bf16 weights for forward
                           and backward and reduce-scatters gradients in float32 (`advgame.models.sharding`)

Why: a bf16 master keeps 8 bits of mantissa. At the paper's lr of 1e-6, an AdamW step on weights of
size ~0.02 is below half a bf16 ulp for most entries and rounds away (about 2% of the entries change), and
an EMA move with decay 0.95 changes far fewer. Float32 masters keep every step. See docs/precision.md.
"""

from __future__ import annotations

import functools

import torch

from advgame.config.schema import ModelConfig, master_precision_problem
from advgame.errors import ConfigError

_COMPUTE = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def compute_dtype(cfg: ModelConfig) -> torch.dtype | None:
    """The configured compute dtype, or None (compute in the storage dtype)."""
    return _COMPUTE[cfg.compute_dtype] if cfg.compute_dtype else None


def inner_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model that every forward (training, scoring and `generate`) goes through: the base
    model under a peft wrapper or an adapter view, else the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def enable_autocast(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    """Run every forward of `model` under torch.autocast(dtype) on the device its weights are on; the weights
    keep their dtype. No-op for None, float32, or a model already set up for `dtype`. Returns `model`."""
    if dtype is None or dtype == torch.float32:
        return model
    target = inner_model(model)
    if getattr(target, "_advgame_autocast", None) == dtype:
        return model
    forward = target.forward

    @functools.wraps(forward)
    def autocast_forward(*args, **kwargs):
        device_type = next(target.parameters()).device.type
        with torch.autocast(device_type=device_type, dtype=dtype):
            return forward(*args, **kwargs)

    target.forward = autocast_forward  # an instance attribute: nn.Module.__call__ (and generate) use it
    target._advgame_autocast = dtype
    return model


def autocast_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """The dtype `enable_autocast` set up on `model`, or None."""
    return getattr(inner_model(model), "_advgame_autocast", None)


def check_resolved_storage(role: str, cfg: ModelConfig, lr: float, storage: torch.dtype) -> None:
    """Config validation refuses an explicit 16-bit master with full fine-tuning at a small lr; this refuses
    the same when `dtype: auto` resolved to one (bfloat16 on CUDA)."""
    name = str(storage).removeprefix("torch.")
    if problem := master_precision_problem(role, cfg, lr, dtype=name):
        raise ConfigError(problem)
