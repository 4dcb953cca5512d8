"""Fully sharded players (`train.sharding.strategy: fsdp`): PyTorch FSDP2 (`fully_shard`), ZeRO-3 style.

Every process keeps 1/N of each player's weights, gradients, optimiser state, EMA and initial snapshot
(all of them DTensor shards), so a player too large to replicate on one GPU trains across N.

    update    forward/backward all-gather one transformer block at a time and reduce-scatter its
              gradients (summed, not averaged: the loss is already Σ_local / N_global)
    sampling  `gathered(model)` all-gathers the whole player once and keeps it whole while the rank
              generates on its own (no collective per token); the shards come back on exit
    EMA       θ̄ ← d·θ̄ + (1−d)·θ on the local shards: no communication
    checkpoint  full tensors (gathered), so a run resumes under any world size or strategy

Two rules keep the processes in lock-step, since every sharded forward is a collective:
  - `gathered` is entered by every process the same number of times (sampling, validation, export);
  - every process runs the same number of forward/backward micro-batches in an update
    (`advgame.game.update` pads a process that has fewer pairs with zero-weight micro-batches).
Every module reshards after each forward, so weights swapped into the shards (the EMA as reference or
sampler) reach the next forward. Backward prefetching is made explicit (block i prefetches block i−1), so
that it does not depend on how many forwards each process ran while generating.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from advgame.config.schema import ShardingConfig
from advgame.errors import ConfigError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtensor_type():
    from torch.distributed.tensor import DTensor

    return DTensor


def is_dtensor(t: object) -> bool:
    return type(t).__name__ == "DTensor" and isinstance(t, _dtensor_type())


def local(t: torch.Tensor) -> torch.Tensor:
    """This process's shard of `t` (`t` itself when it is not sharded); writes to it change `t`."""
    return t.to_local() if is_dtensor(t) else t


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor (an all-gather when `t` is sharded: every process must call it)."""
    return t.full_tensor() if is_dtensor(t) else t


def shard_like(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`value` (a whole tensor, the same on every process) laid out like `like`: its local shard when
    `like` is a DTensor, else `value` itself. No communication."""
    if not is_dtensor(like):
        return value
    from torch.distributed.tensor import distribute_tensor

    value = value.to(device=like.device, dtype=like.dtype)
    return distribute_tensor(value, like.device_mesh, like.placements, src_data_rank=None)


def load_whole_(dst: torch.Tensor, value: torch.Tensor) -> None:
    """Copy `value` (a whole tensor, e.g. from a checkpoint) into `dst`, or into this process's shard of
    it."""
    local(dst).copy_(local(shard_like(value, dst)))


def fsdp_modules(model: torch.nn.Module) -> list:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def is_sharded(model: torch.nn.Module) -> bool:
    return bool(fsdp_modules(model))


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks, found by the class names transformers marks as never split across devices
    (`_no_split_modules`, the same rule accelerate's FSDP auto-wrap uses)."""
    names: set[str] = set()
    for m in model.modules():
        names |= set(getattr(m, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        raise ConfigError(
            f"train.sharding.strategy=fsdp: cannot find the transformer blocks of {type(model).__name__} "
            "(no module class listed in its _no_split_modules)"
        )
    return blocks


def mixed_precision_policy(cfg: ShardingConfig, compute_dtype: torch.dtype | None = None):
    """FSDP2's MixedPrecisionPolicy for a player: weights gathered in `param_dtype` (else the player's compute
    dtype, else as stored), gradients reduced in `reduce_dtype` (else float32 whenever the gathered weights
    are lower precision, so that the reduce-scatter does not round the float32 masters' gradients)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    param_dtype = _DTYPES.get(cfg.param_dtype or "") or compute_dtype
    reduce_dtype = _DTYPES.get(cfg.reduce_dtype or "")
    if reduce_dtype is None and param_dtype is not None and param_dtype != torch.float32:
        reduce_dtype = torch.float32
    return MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)


def shard_model(
    model: torch.nn.Module, cfg: ShardingConfig, compute_dtype: torch.dtype | None = None
) -> None:
    """Shard `model` in place across the default process group: each block, then the rest (embeddings,
    final norm, head) as the root. Trainable parameters become DTensor shards, kept in their stored dtype
    (the master weights); forward and backward run in `mixed_precision_policy(cfg, compute_dtype)`."""
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    mp = mixed_precision_policy(cfg, compute_dtype)
    offload = CPUOffloadPolicy() if cfg.cpu_offload else OffloadPolicy()
    blocks = _blocks(model)
    for block in blocks:
        fully_shard(block, mp_policy=mp, offload_policy=offload, reshard_after_forward=True)
    # The root is the transformers model itself, not a peft wrapper: peft's generate calls it directly, and
    # FSDP needs every forward to enter through the root. It reshards after forward too, so that weights
    # swapped into the shards (the EMA as reference) between two forwards reach the next all-gather.
    root = model.get_base_model() if hasattr(model, "get_base_model") else model
    fully_shard(root, mp_policy=mp, offload_policy=offload, reshard_after_forward=True)
    chain = [root, *reversed(blocks)]  # backward runs head -> last block -> ... -> first block
    for current, following in itertools.pairwise(chain):
        current.set_modules_to_backward_prefetch([following])
    blocks[0].set_modules_to_backward_prefetch([root])  # still gathered for the embedding's gradient: a no-op
    for m in fsdp_modules(model):
        m.set_gradient_divide_factor(
            1.0
        )  # sum over processes: the loss is already divided by the global count
        m.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no pre-multiplied sum)


@contextmanager
def gathered(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Inside the block a sharded model is whole on every process and runs without collectives, so each
    process may generate on its own (or only one may). Every process must enter it. Re-entrant; a no-op
    for a model that is not sharded."""
    mods = fsdp_modules(model)
    if not mods or getattr(model, "_advgame_gathered", False):
        yield model
        return
    model._advgame_gathered = True
    for m in mods:
        m.set_reshard_after_forward(False, recurse=False)
    for m in mods:
        m.unshard()
    try:
        yield model
    finally:
        for m in mods:
            m.reshard()
            m.set_reshard_after_forward(True, recurse=False)
        model._advgame_gathered = False


def whole_state_dict(model: torch.nn.Module, trainable_only: bool = False) -> dict[str, torch.Tensor] | None:
    """`model.state_dict()` with sharded tensors gathered whole (every process must call it), or None for a
    model that is not sharded (callers then use the model's own state dict). With `trainable_only`, frozen
    shards (a LoRA player's base) stay sharded: saving an adapter needs only the trainable tensors."""
    if not is_sharded(model):
        return None
    keep = {n for n, p in model.named_parameters() if p.requires_grad} if trainable_only else None
    return {k: full(v) if keep is None or k in keep else v for k, v in model.state_dict().items()}


def save_pretrained(model: torch.nn.Module, target, *, write: bool = True) -> None:
    """`model.save_pretrained(target)` in safetensors, with a sharded model's tensors gathered whole first
    (every process must call it; only those with `write` write). A LoRA model gathers its adapter only."""
    whole = whole_state_dict(model, trainable_only=hasattr(model, "peft_config"))
    if write:
        model.save_pretrained(target, safe_serialization=True, **({"state_dict": whole} if whole else {}))
