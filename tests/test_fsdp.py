"""Fully sharded players (train.sharding.strategy=fsdp, PyTorch FSDP2) on CPU (gloo): 2 processes for 2 game
steps give the weights, EMAs, optimiser states and metrics of 1 unsharded process on the same global batch,
and a sharded 2-process checkpoint resumes in 1 process. The global batch of 3 seeds per class gives the
processes different numbers of pairs and micro-batches, so the zero-weight passes that keep sharded
collectives in step are exercised. Text and judges are scripted, as in test_distributed."""

from __future__ import annotations

import pytest

from advgame.config import validate_config
from advgame.train.checkpoint import load_checkpoint
from tests.test_distributed import assert_same_metrics, assert_same_state, train_two_processes
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


def test_fsdp_refuses_a_policy_judge_and_shared_base(tmp_path):
    cfg = tiny_config(tmp_path).model_dump(mode="json")
    cfg["train"]["sharding"] = {"strategy": "fsdp"}
    judge = dict(cfg, judges={"default": {"kind": "heuristic"}, "defender": {"kind": "model", "model": "defender"}})
    with pytest.raises(ValueError, match="sharded defender player itself"):
        validate_config(judge)
    with pytest.raises(ValueError, match="does not support shared_base"):
        validate_config(dict(cfg, shared_base=True, attacker=dict(cfg["defender"])))


def test_accelerate_fsdp_launch_settings_map_onto_the_config(tmp_path):
    from advgame.train.launcher import apply_launcher_env

    cfg = tiny_config(tmp_path)
    assert apply_launcher_env(cfg, {}) == cfg  # no launcher: unchanged
    env = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_OFFLOAD_PARAMS": "true",
           "ACCELERATE_MIXED_PRECISION": "bf16", "FSDP_ACTIVATION_CHECKPOINTING": "true"}
    out = apply_launcher_env(cfg, env)
    assert out.train.sharding.model_dump() == {
        "strategy": "fsdp", "param_dtype": "bfloat16", "reduce_dtype": "float32", "cpu_offload": True
    }
    assert out.attacker.gradient_checkpointing and out.defender.gradient_checkpointing
    assert cfg.train.sharding.strategy == "none"  # the caller's config is not modified


@pytest.mark.parametrize("env, match", [
    ({"ACCELERATE_USE_DEEPSPEED": "true"}, "does not integrate"),
    ({"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "SHARD_GRAD_OP"}, "shards fully"),
    ({"ACCELERATE_USE_FSDP": "true", "FSDP_RESHARD_AFTER_FORWARD": "false"}, "always reshards"),
])
def test_launch_settings_advgame_cannot_honour_are_refused(tmp_path, env, match):
    from advgame.train.launcher import LauncherError, apply_launcher_env

    with pytest.raises(LauncherError, match=match):
        apply_launcher_env(tiny_config(tmp_path), env)
