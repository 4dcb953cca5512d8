"""Typed run configuration: schema, YAML presets and command-line overrides."""

from advgame.config.load import ConfigError, load_config, parse_override, validate_config
from advgame.config.schema import (
    CheckpointConfig,
    DataConfig,
    EMAConfig,
    GameConfig,
    JudgeConfig,
    JudgesConfig,
    LoggingConfig,
    LoraConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SamplingConfig,
    TrainConfig,
)

__all__ = [
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "EMAConfig",
    "GameConfig",
    "JudgeConfig",
    "JudgesConfig",
    "LoggingConfig",
    "LoraConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "SamplingConfig",
    "TrainConfig",
    "load_config",
    "parse_override",
    "validate_config",
]
