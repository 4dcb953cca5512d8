"""Lazy imports of optional dependencies, with a message that says which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from advgame.errors import AdvGameError

# module name -> the `advgame[extra]` that provides it
EXTRA_OF = {
    "vllm": "vllm",
    "ray": "ray",
    "lm_eval": "eval",
    "datasets": "eval",
    "wandb": "track",
    "tensorboard": "track",
    "fastapi": "serve",
    "uvicorn": "serve",
    "trl": "dev",
}


class MissingExtraError(AdvGameError, ImportError):
    """An optional dependency is not installed."""


def require(module: str) -> ModuleType:
    """Import `module`, or fail with the `pip install 'advgame[extra]'` line that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        extra = EXTRA_OF.get(top)
        hint = f"pip install 'advgame[{extra}]'" if extra else f"pip install {top}"
        raise MissingExtraError(f"optional dependency '{top}' is not installed: {hint}") from err
