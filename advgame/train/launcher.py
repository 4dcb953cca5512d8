"""What `accelerate launch` asked for, applied to the run config.

`accelerate launch --config_file configs/accelerate/fsdp.yaml -m advgame train CONFIG` passes its settings
to the processes as environment variables. advgame does its own sharding (`advgame.models.sharding`,
FSDP2), so it reads the settings that mean something for it and refuses the ones it cannot honour,
instead of silently training differently from what the launch config says:

    distributed_type: FSDP           -> train.sharding.strategy = fsdp
    fsdp_offload_params: true        -> train.sharding.cpu_offload = true
    mixed_precision: bf16 | fp16     -> train.sharding.param_dtype = bfloat16 | float16,
                                        reduce_dtype = float32
    fsdp_activation_checkpointing    -> gradient_checkpointing for both players
    sharding other than full shard   -> error
    distributed_type: DEEPSPEED      -> error (not integrated; FSDP full sharding is the ZeRO-3 equivalent)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from advgame.config.load import validate_config
from advgame.config.schema import RunConfig
from advgame.errors import ConfigError

log = logging.getLogger(__name__)

_FULL_SHARD = {"", "1", "FULL_SHARD", "ShardingStrategy.FULL_SHARD", "None"}
_PRECISION = {"bf16": "bfloat16", "fp16": "float16"}


class LauncherError(ConfigError):
    """The launcher asked for something advgame does not do; the message says what to use instead."""


def apply_launcher_env(cfg: RunConfig, env: Mapping[str, str]) -> RunConfig:
    """A copy of `cfg` with the accelerate launcher's sharding settings applied (unchanged without them)."""
    if env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        raise LauncherError(
            "accelerate was launched with DeepSpeed, which advgame does not integrate; launch with "
            "configs/accelerate/fsdp.yaml instead (FSDP full sharding partitions weights, gradients and "
            "optimiser state across processes as ZeRO-3 does), or set train.sharding.strategy=fsdp under "
            "torchrun"
        )
    if env.get("ACCELERATE_USE_FSDP", "").lower() != "true":
        return cfg
    strategy = env.get("FSDP_SHARDING_STRATEGY", "")
    if strategy not in _FULL_SHARD:
        raise LauncherError(
            f"accelerate FSDP sharding strategy {strategy!r}: advgame shards fully (FULL_SHARD, ZeRO-3 "
            "style); remove fsdp_sharding_strategy from the launch config, or launch without FSDP (data "
            "parallel)"
        )
    if env.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() == "false":
        raise LauncherError(
            "accelerate FSDP fsdp_reshard_after_forward=false: advgame always reshards after forward"
        )
    cfg = cfg.model_copy(deep=True)
    sharding = cfg.train.sharding
    changed = {"train.sharding.strategy": "fsdp"}
    sharding.strategy = "fsdp"
    if env.get("FSDP_OFFLOAD_PARAMS", "false").lower() == "true":
        sharding.cpu_offload = True
        changed["train.sharding.cpu_offload"] = True
    precision = _PRECISION.get(env.get("ACCELERATE_MIXED_PRECISION", "no"))
    if precision:
        sharding.param_dtype, sharding.reduce_dtype = precision, "float32"
        changed["train.sharding.param_dtype"] = precision
    if env.get("FSDP_ACTIVATION_CHECKPOINTING", "false").lower() == "true":
        cfg.attacker.gradient_checkpointing = cfg.defender.gradient_checkpointing = True
        changed["gradient_checkpointing"] = True
    if env.get("FSDP_VERSION", "2") != "2":
        log.warning(
            "accelerate asked for FSDP version %s; advgame shards with FSDP2 (fully_shard)",
            env["FSDP_VERSION"],
        )
    log.info("from the accelerate launch config: %s", ", ".join(f"{k}={v}" for k, v in changed.items()))
    return validate_config(cfg.model_dump(), source="the config with the accelerate launch settings")
