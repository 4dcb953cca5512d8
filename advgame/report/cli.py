"""`advgame report`: render a run's curves and results as an HTML page."""

from __future__ import annotations

import argparse
import sys

from advgame import __version__

SUMMARY = "render a run's curves and results as an HTML page"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand to the `advgame` parser."""
    p = sub.add_parser("report", help=f"{SUMMARY} (not built yet)", description=SUMMARY[0].upper() + SUMMARY[1:] + ".")
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"advgame report: reporting is not built yet in advgame {__version__}.", file=sys.stderr)
    return 2
