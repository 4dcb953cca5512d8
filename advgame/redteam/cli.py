"""`advgame redteam`: run the trained Attacker, PAIR, TAP and GCG against a target."""

from __future__ import annotations

import argparse
import sys

from advgame import __version__

SUMMARY = "run the trained Attacker, PAIR, TAP and GCG against a target"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `redteam` subcommand to the `advgame` parser."""
    p = sub.add_parser("redteam", help=f"{SUMMARY} (not built yet)", description=SUMMARY[0].upper() + SUMMARY[1:] + ".")
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"advgame redteam: red-teaming is not built yet in advgame {__version__}.", file=sys.stderr)
    return 2
