"""Data-parallel training across processes (torch.distributed; launched by torchrun or `accelerate launch`).

    every rank       holds both players in full, and the same seed stream
    each step        takes the global seed batch from the stream, keeps its shard batch[rank::world],
                     plays it, backpropagates Σ_local loss / N_global and all-reduces the gradients,
                     so every rank applies the same update and the EMAs stay identical
    rank 0           writes metrics, rollouts, checkpoints and the export; the others wait at a barrier

A checkpoint holds the full state (weights, EMAs, optimisers, data position, judge counters summed over
ranks), so a run resumes under any world size. Collectives run under `train.dist_timeout_s`: a rank that
dies or hangs makes the others fail with an error instead of waiting forever.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def info() -> DistInfo:
    if not active():
        return DistInfo()
    return DistInfo(
        dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    )


def init_from_env(timeout_s: float) -> DistInfo:
    """Join the process group described by the launcher's environment (RANK, WORLD_SIZE, MASTER_ADDR...).

    A single process (no WORLD_SIZE, or 1) needs no group. On CUDA, NCCL carries CUDA tensors and gloo the
    small CPU tensors of the bookkeeping collectives (pair counts, metric sums): NCCL alone cannot take
    CPU tensors. On CPU, gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return info()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    log.info("rank %d of %d joined (%s)", dist.get_rank(), world, backend)
    return info()


def shard(items: Sequence[T], dist_info: DistInfo) -> list[T]:
    """This rank's share of a global batch: items[rank::world] (every rank gets at least one when
    len(items) >= world)."""
    return list(items[dist_info.rank :: dist_info.world_size])


def gather(obj: T) -> list[T]:
    """`obj` from every rank, in rank order ([obj] in a single process)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_concat(items: list[T]) -> list[T]:
    """The concatenation of every rank's list, in rank order."""
    return [x for part in gather(items) for x in part]


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_module(model: torch.nn.Module) -> None:
    """Make every rank hold rank 0's trainable weights (no-op in one process)."""
    if not active():
        return
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                dist.broadcast(p.data, src=0)


def broadcast_player(player) -> None:
    """Make every rank start from rank 0's trainable weights, EMA and initial snapshot (no-op in one process,
    and for a sharded player, whose whole weights were broadcast before sharding)."""
    if not active() or player.is_sharded:
        return
    broadcast_module(player.model)
    banks = [bank for bank in (player.ema, player.initial) if bank is not None]
    with torch.no_grad():
        for bank in banks:
            for t in bank.tensors.values():
                dist.broadcast(t, src=0)


def sum_counters(state: dict[str, Any]) -> dict[str, Any]:
    """Sum nested {name: int | {name: int}} counters (judge statistics) over ranks."""
    parts = gather(state)
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                inner = total.setdefault(key, {})
                for k, v in value.items():
                    inner[k] = inner.get(k, 0) + v
            else:
                total[key] = total.get(key, 0) + value
    return total


def assert_in_sync(groups: dict[str, dict[str, torch.Tensor]]) -> None:
    """Raise if the processes' tensors (weights, EMAs, optimiser states) differ: a checksum per group,
    compared across ranks. All-reduced gradients and identical optimisers keep them bit-identical."""
    if not active():
        return
    sums = {g: float(sum(t.double().sum().item() for t in ts.values())) for g, ts in groups.items()}
    per_rank = gather(sums)
    bad = sorted(g for g in sums if len({r[g] for r in per_rank}) > 1)
    if bad:
        raise RuntimeError(
            f"processes diverged in {', '.join(bad)}: checksums per rank {[r[bad[0]] for r in per_rank]}"
        )
