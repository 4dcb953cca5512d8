"""`advgame serve`: serve a checkpoint or model over an OpenAI-compatible API."""

from __future__ import annotations

import argparse
import sys

from advgame import __version__

SUMMARY = "serve a checkpoint or model over an OpenAI-compatible API"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand to the `advgame` parser."""
    p = sub.add_parser("serve", help=f"{SUMMARY} (not built yet)", description=SUMMARY[0].upper() + SUMMARY[1:] + ".")
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"advgame serve: the server is not built yet in advgame {__version__}.", file=sys.stderr)
    return 2
