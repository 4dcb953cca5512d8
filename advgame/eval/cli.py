"""`advgame eval`: score a model on safety, over-refusal and utility benchmarks."""

from __future__ import annotations

import argparse
import sys

from advgame import __version__

SUMMARY = "score a model on safety, over-refusal and utility benchmarks"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `eval` subcommand to the `advgame` parser."""
    p = sub.add_parser("eval", help=f"{SUMMARY} (not built yet)", description=SUMMARY[0].upper() + SUMMARY[1:] + ".")
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"advgame eval: the evaluation suite is not built yet in advgame {__version__}.", file=sys.stderr)
    return 2
