"""Lazy package exports (PEP 562): a package names what it offers, and each name is imported on first use,
so light modules (the CLI's parser, `--help`, `--version`) do not pull in torch and transformers."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module


def lazy_exports(package: str, homes: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` that imports `name` from `package.homes[name]` when first asked for."""

    def __getattr__(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        return getattr(import_module(f"{package}.{homes[name]}"), name)

    return __getattr__
