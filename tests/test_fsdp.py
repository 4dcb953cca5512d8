"""Fully sharded players (train.sharding.strategy=fsdp, PyTorch FSDP2) on CPU (gloo): 2 processes for 2 game
steps give the weights, EMAs, optimiser states and metrics of 1 unsharded process on the same global batch,
and a sharded 2-process checkpoint resumes in 1 process. The global batch of 3 seeds per class gives the
processes different numbers of pairs and micro-batches, so the zero-weight passes that keep sharded
collectives in step are exercised. Text and judges are scripted, as in test_distributed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advgame.config import validate_config
from advgame.game.step import game_step
from advgame.train.checkpoint import load_checkpoint
from tests.test_distributed import as_rank, assert_same_metrics, assert_same_state, train_two_processes
from tests.test_train_e2e import FAMILIES, run, tiny_config, train_rows

pytest.importorskip("torch.distributed.fsdp", reason="needs torch.distributed (FSDP2)")

UNEVEN_BATCH = 3  # rank 0 gets 2 seeds per split, rank 1 gets 1


def _fsdp(cfg):
    raw = cfg.model_dump(mode="json")
    raw["train"]["sharding"] = {"strategy": "fsdp"}
    return validate_config(raw)


@pytest.mark.parametrize("family", ["dpo_md", "grpo"])
def test_sharded_two_processes_equal_one_unsharded_process(tmp_path, family):
    cfg = tiny_config(tmp_path, **FAMILIES[family], data__batch_size=UNEVEN_BATCH)
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    run(cfg, single)
    train_two_processes(_fsdp(cfg), sharded)
    assert_same_state(single, sharded)
    assert_same_metrics(single, sharded)
    rows = train_rows(sharded)
    assert rows[0]["harmful/defender/pairs" if family == "dpo_md" else "harmful/defender/rollouts"] > 0
    assert (sharded / "final" / "defender" / "adapter_model.safetensors").is_file()
    assert (sharded / "final" / "attacker_ema" / "model.safetensors").is_file()


def test_sharded_checkpoint_resumes_in_one_process(tmp_path):
    cfg = tiny_config(tmp_path, data__batch_size=UNEVEN_BATCH)
    straight, switched = tmp_path / "straight", tmp_path / "switched"
    run(cfg, straight)
    train_two_processes(_fsdp(cfg), switched, stop_after=1)
    assert load_checkpoint(switched)[1]["step"] == 1
    run(_fsdp(cfg), switched, resume=True)  # one process: the fsdp setting replicates
    assert_same_state(straight, switched)
    assert [r["step"] for r in train_rows(switched)] == [1, 2]


def _resume_worker(rank: int, world: int, port: int, raw: dict, run_dir: str) -> None:
    import torch.distributed as dist

    as_rank(rank, world, port)
    try:
        run(validate_config(raw), Path(run_dir), resume=True)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_sharded_checkpoint_resumes_sharded(tmp_path):
    """Stop a sharded 2-process run after step 1 and resume it sharded: the whole tensors of the checkpoint
    are laid out as shards again (weights, EMA, AdamW moments) and the run ends where the straight one
    does."""
    import torch.multiprocessing as mp

    from tests.test_distributed import _free_port

    cfg = tiny_config(tmp_path, data__batch_size=UNEVEN_BATCH)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(cfg, straight)
    train_two_processes(_fsdp(cfg), resumed, stop_after=1)
    mp.spawn(
        _resume_worker, args=(2, _free_port(), _fsdp(cfg).model_dump(mode="json"), str(resumed)), nprocs=2
    )
    assert_same_state(straight, resumed)
    assert [r["step"] for r in train_rows(resumed)] == [1, 2]


def test_fsdp_refuses_a_policy_judge_and_shared_base(tmp_path):
    cfg = tiny_config(tmp_path).model_dump(mode="json")
    cfg["train"]["sharding"] = {"strategy": "fsdp"}
    judge = dict(
        cfg, judges={"default": {"kind": "heuristic"}, "defender": {"kind": "model", "model": "defender"}}
    )
    with pytest.raises(ValueError, match="sharded defender player itself"):
        validate_config(judge)
    with pytest.raises(ValueError, match="does not support shared_base"):
        validate_config(dict(cfg, shared_base=True, attacker=dict(cfg["defender"])))


def test_accelerate_fsdp_launch_settings_map_onto_the_config(tmp_path):
    from advgame.train.launcher import apply_launcher_env

    cfg = tiny_config(tmp_path)
    assert apply_launcher_env(cfg, {}) == cfg  # no launcher: unchanged
    env = {
        "ACCELERATE_USE_FSDP": "true",
        "FSDP_VERSION": "2",
        "FSDP_OFFLOAD_PARAMS": "true",
        "ACCELERATE_MIXED_PRECISION": "bf16",
        "FSDP_ACTIVATION_CHECKPOINTING": "true",
    }
    out = apply_launcher_env(cfg, env)
    assert out.train.sharding.model_dump() == {
        "strategy": "fsdp",
        "param_dtype": "bfloat16",
        "reduce_dtype": "float32",
        "cpu_offload": True,
    }
    assert out.attacker.gradient_checkpointing and out.defender.gradient_checkpointing
    assert cfg.train.sharding.strategy == "none"  # the caller's config is not modified


@pytest.mark.parametrize(
    "env, match",
    [
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, "does not integrate"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "SHARD_GRAD_OP"}, "shards fully"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_RESHARD_AFTER_FORWARD": "false"}, "always reshards"),
    ],
)
def test_launch_settings_advgame_cannot_honour_are_refused(tmp_path, env, match):
    from advgame.train.launcher import LauncherError, apply_launcher_env

    with pytest.raises(LauncherError, match=match):
        apply_launcher_env(tiny_config(tmp_path), env)


def _engine_worker(rank: int, world: int, port: int, root: str) -> None:
    """One sharded game step with engine-backed players; each process saves what its engines received."""

    import torch.distributed as dist
    from safetensors.torch import save_file

    from advgame import distributed
    from tests.test_engine_sync import _game

    as_rank(rank, world, port)
    distributed.init_from_env(60)
    try:
        (Path(root) / f"rank{rank}").mkdir()
        game, data, engines = _game(Path(root) / f"rank{rank}", train__sharding={"strategy": "fsdp"})
        assert all(p.is_sharded for p in game.players())
        batches = {
            c: distributed.shard(data.train[c].next_batch(), distributed.info())
            for c in ("harmful", "benign")
        }
        game_step(game, batches, 0)
        for name, engine in engines.items():
            save_file(
                {k: v.contiguous() for k, v in engine.received[0].items()},
                f"{root}/{name}-rank{rank}.safetensors",
            )
    finally:
        dist.destroy_process_group()


def test_sharded_players_send_whole_weights_to_their_engines(tmp_path):
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    from tests.test_distributed import _free_port
    from tests.test_engine_sync import _game

    (tmp_path / "single").mkdir()
    game, data, engines = _game(tmp_path / "single")
    game_step(game, {c: data.train[c].next_batch() for c in ("harmful", "benign")}, 0)
    mp.spawn(_engine_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    for name, engine in engines.items():
        expected = engine.received[0]  # the EMA at step 0, whole, from one unsharded process
        for rank in (0, 1):
            got = load_file(tmp_path / f"{name}-rank{rank}.safetensors")
            assert got.keys() == expected.keys(), name
            for key, value in expected.items():
                torch.testing.assert_close(got[key], value, msg=f"{name}/{key} on rank {rank}")


TINY_RUN = """
name: tiny-cli
attacker: {path: tiny-llama, finetune: lora, lora: {r: 4, alpha: 8}, device: cpu}
defender: {path: tiny-llama, finetune: full, device: cpu, gradient_checkpointing: true}
attacker_sampling: {max_new_tokens: 8, batch_size: 8}
defender_sampling: {max_new_tokens: 8, batch_size: 8}
ema: {decay: 0.5}
game: {attacker_format: plain, direct_seeds: true, penalize_truncated_answers: false}
judges: {default: {kind: heuristic}}
data: {harmful: "builtin:demo_harmful", benign: "builtin:demo_benign", batch_size: 3, heldout: 4}
logging: {progress: false}
train: {steps: 2, validate_every_n_steps: 2, validation_size: 4, microbatch_size: 2}
"""


def test_cli_trains_sharded_players_on_two_processes(tmp_path):
    """`advgame train --num-processes 2 train.sharding.strategy=fsdp`: real sampling, heuristic judges, and
    gradient checkpointing in the sharded full fine-tuned Defender (the one with pairs: a tiny random
    Attacker's rewrites are all cut at the length cap)."""
    import json
    import os
    import subprocess
    import sys

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_RUN)
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "advgame",
            "train",
            str(config),
            "train.sharding.strategy=fsdp",
            "--num-processes",
            "2",
            "--run-dir",
            str(run_dir),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "attacker/lr" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert (
        sum(r["harmful/defender/pairs"] + r["benign/defender/pairs"] for r in steps) > 0
    )  # sharded updates ran
    assert any("valid/harmful/refusal_rate" in r for r in rows)
    assert (run_dir / "final" / "defender" / "model.safetensors").is_file()
    assert (run_dir / "final" / "attacker" / "adapter_model.safetensors").is_file()
    assert load_checkpoint(run_dir)[1]["step"] == 2


def _engine_train_worker(rank: int, world: int, port: int, root: str) -> None:
    """A whole sharded run with engine-backed players, validation and export (process 0 validates alone)."""
    import torch.distributed as dist

    from advgame.train.trainer import train
    from tests.scripted import scripted_game
    from tests.test_engine_sync import FakeEngine
    from tests.test_train_e2e import attacker_reply, defender_reply, scripted

    as_rank(rank, world, port)
    try:
        cfg = tiny_config(Path(root), train__sharding={"strategy": "fsdp"}, train__dist_timeout_s=60)
        judges, backends = scripted(cfg)
        tok = backends["attacker"].tokenizer
        engines = {"attacker": FakeEngine(attacker_reply, tok), "defender": FakeEngine(defender_reply, tok)}
        train(cfg, Path(root) / "run", game=scripted_game(cfg, judges, engines=engines))
        Path(root, f"done{rank}").write_text(str(len(engines["defender"].received)))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_sharded_run_with_engines_validates_on_one_process_without_hanging(tmp_path):
    import torch.multiprocessing as mp

    from tests.test_distributed import _free_port

    mp.spawn(_engine_train_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    synced = [int((tmp_path / f"done{r}").read_text()) for r in (0, 1)]
    assert synced[0] == synced[1] >= 2  # every process synced its engine at every new EMA / live version
    rows = train_rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]
    assert (tmp_path / "run" / "final" / "defender_ema" / "adapter_model.safetensors").is_file()
