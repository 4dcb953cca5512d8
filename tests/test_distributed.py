"""Data parallelism on CPU (gloo): 2 processes for 2 game steps give the weights of 1 process on the same
global batch, and a 2-process checkpoint resumes in 1 process. Text and judges are scripted (as in
test_train_e2e) so the comparison tests the update arithmetic, not sampling noise."""

from __future__ import annotations

import math
import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from advgame.config import validate_config
from advgame.train.checkpoint import load_checkpoint
from tests.test_train_e2e import FAMILIES, run, tiny_config, train_rows

GLOBAL_BATCH = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_rank(rank: int, world: int, port: int) -> None:
    """Make this spawned process rank `rank` of `world` on 127.0.0.1:`port` (read by init_from_env), one
    thread."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)


def _worker(rank: int, world: int, port: int, raw: dict, run_dir: str, stop_after: int | None) -> None:
    as_rank(rank, world, port)
    try:
        run(validate_config(raw), Path(run_dir), stop_after=stop_after)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def train_two_processes(cfg, run_dir: Path, stop_after: int | None = None) -> None:
    mp.spawn(_worker, args=(2, _free_port(), cfg.model_dump(mode="json"), str(run_dir), stop_after), nprocs=2)


def assert_same_state(a: Path, b: Path, atol: float = 1e-5) -> None:
    ta, sa, _ = load_checkpoint(a)
    tb, sb, _ = load_checkpoint(b)
    assert sa["step"] == sb["step"]
    assert sa["data"] == sb["data"]
    assert sa["judges"] == sb["judges"]  # counters summed over processes
    for group in ta:
        if group == "rng":
            continue
        assert ta[group].keys() == tb[group].keys(), group
        for name in ta[group]:
            torch.testing.assert_close(
                ta[group][name], tb[group][name], atol=atol, rtol=1e-5, msg=f"{group}/{name}"
            )


def assert_same_metrics(a: Path, b: Path) -> None:
    ra, rb = train_rows(a), train_rows(b)
    assert len(ra) == len(rb)
    for x, y in zip(ra, rb, strict=True):
        keys = {k for k in x if not k.startswith("time/")}
        assert keys == {k for k in y if not k.startswith("time/")}
        for k in keys:
            if isinstance(x[k], float) and isinstance(y[k], float):
                assert math.isclose(x[k], y[k], rel_tol=1e-4, abs_tol=1e-6), (k, x[k], y[k])
            else:
                assert x[k] == y[k], (k, x[k], y[k])


@pytest.mark.parametrize("family", ["dpo_md", "grpo"])
def test_two_processes_equal_one_process_on_the_global_batch(tmp_path, family):
    cfg = tiny_config(tmp_path, **FAMILIES[family], data__batch_size=GLOBAL_BATCH)
    single, double = tmp_path / "single", tmp_path / "double"
    run(cfg, single)
    train_two_processes(cfg, double)
    assert_same_state(single, double)
    assert_same_metrics(single, double)
    rows = train_rows(double)
    assert rows[0]["harmful/defender/pairs" if family == "dpo_md" else "harmful/defender/rollouts"] > 0
    assert (double / "final" / "defender").is_dir()  # exported once, by the main process


def test_two_process_checkpoint_resumes_in_one_process(tmp_path):
    cfg = tiny_config(tmp_path, data__batch_size=GLOBAL_BATCH)
    straight, switched = tmp_path / "straight", tmp_path / "switched"
    run(cfg, straight)
    train_two_processes(cfg, switched, stop_after=1)
    assert load_checkpoint(switched)[1]["step"] == 1
    run(cfg, switched, resume=True)
    assert_same_state(straight, switched)
    assert [r["step"] for r in train_rows(switched)] == [1, 2]


def test_global_batch_smaller_than_world_size_is_refused(tmp_path, monkeypatch):
    from advgame import distributed

    monkeypatch.setattr(
        distributed, "init_from_env", lambda timeout_s: distributed.DistInfo(rank=0, world_size=2)
    )
    with pytest.raises(ValueError, match="at least the number of processes"):
        run(tiny_config(tmp_path, data__batch_size=1), tmp_path / "run")


def test_shard_splits_the_global_batch_without_overlap():
    from advgame.distributed import DistInfo, shard

    items = list(range(7))
    parts = [shard(items, DistInfo(rank=r, world_size=3)) for r in range(3)]
    assert sorted(x for p in parts for x in p) == items and all(parts)


def _collectives_worker(rank: int, world: int, port: int, out: str) -> None:
    """Rank 0 has a gradient, rank 1 had no pairs (grad None): the step must neither hang nor diverge.
    Then the processes' tensors are made to differ on purpose: the sync check must say so."""
    from types import SimpleNamespace

    from advgame.distributed import assert_in_sync
    from advgame.game.update import optimizer_step

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", timeout=timedelta(seconds=30))
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        if rank == 0:
            model(torch.ones(1, 3)).sum().backward()
        optimizer_step(SimpleNamespace(model=model, optimizer=optimizer, updates=0), max_grad_norm=None)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/rank{rank}.safetensors")
        assert_in_sync({"model": dict(model.state_dict())})
        try:
            assert_in_sync({"ema": {"w": torch.ones(3) * (1 + rank)}})
        except RuntimeError as err:
            Path(f"{out}/rank{rank}.err").write_text(str(err))
    finally:
        dist.destroy_process_group()


def test_collectives_without_signal_and_divergence_check(tmp_path):
    mp.spawn(_collectives_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    r0, r1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    torch.manual_seed(0)
    expected = torch.nn.Linear(3, 2)
    expected.weight.data -= 0.5 * torch.ones(2, 3)  # rank 0's gradient, summed with rank 1's zeros
    expected.bias.data -= 0.5 * torch.ones(2)
    for state in (r0, r1):
        torch.testing.assert_close(state["weight"], expected.weight.data)
        torch.testing.assert_close(state["bias"], expected.bias.data)
    for r in (0, 1):
        assert "processes diverged in ema" in (tmp_path / f"rank{r}.err").read_text()


def test_cuda_runs_carry_cpu_bookkeeping_tensors_over_gloo(monkeypatch):
    """NCCL takes CUDA tensors only; the pair counts and metric sums are CPU tensors, so a CUDA run must
    join a group that has gloo for CPU tensors too (checked without a GPU, by recording the call)."""
    from advgame import distributed

    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.setdefault("device", i))
    monkeypatch.setattr(
        dist, "init_process_group", lambda backend, timeout: calls.setdefault("backend", backend)
    )
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(distributed, "info", lambda: distributed.DistInfo())
    distributed.init_from_env(5.0)
    assert calls == {"device": 1, "backend": "cpu:gloo,cuda:nccl"}
