"""Argparse value types shared by the subcommands: a number within bounds (or a one-line usage error), and
a comma-separated list."""

from __future__ import annotations

import argparse
import math


def number(low: float, high: float = math.inf, kind=int):
    """An argparse type: a finite number of `kind` in [low, high] (budgets of 0 or -1 are errors, not
    no-ops)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if not low <= value <= high or math.isinf(value):  # NaN fails the comparison
            bounds = f"at least {low:g}" if math.isinf(high) else f"in {low:g}..{high:g}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


POSITIVE = number(1)
NON_NEGATIVE = number(0)
POSITIVE_FLOAT = number(1e-9, kind=float)
PORT = number(0, 65535)


def comma_list(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']."""
    return [part.strip() for part in text.split(",") if part.strip()]
