"""`advgame report`: render a run's curves and results as an HTML page.

    advgame report RUN_DIR [RESULTS...] [-o OUT.html]

RUN_DIR is a training run directory (metrics.jsonl, rollouts.jsonl); RESULTS are eval or redteam JSON
files, or directories of them. RUN_DIR may be '-' for a page of results only. The page is self-contained.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from advgame.atomic import write_text_atomic

SUMMARY = "render a run's curves and results as an HTML page"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand to the `advgame` parser."""
    p = sub.add_parser("report", help=SUMMARY, description=SUMMARY[0].upper() + SUMMARY[1:] + ".")
    p.add_argument("run_dir", metavar="RUN_DIR", help="training run directory, or '-' for results only")
    p.add_argument(
        "results", nargs="*", metavar="RESULTS", help="eval/redteam result JSON files or directories"
    )
    p.add_argument("-o", "--output", help="output HTML file (default RUN_DIR/report.html, or report.html)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from advgame.report.data import load_report
    from advgame.report.html import render

    run_dir = None if args.run_dir == "-" else Path(args.run_dir)
    if run_dir is not None and not (run_dir / "metrics.jsonl").is_file():
        print(f"advgame report: {run_dir} is not a run directory (no metrics.jsonl)", file=sys.stderr)
        return 1
    missing = [r for r in args.results if not Path(r).exists()]
    if missing:
        print(f"advgame report: result path not found: {missing[0]}", file=sys.stderr)
        return 1
    report = load_report(run_dir, [Path(r) for r in args.results])
    out = Path(args.output) if args.output else (run_dir / "report.html" if run_dir else Path("report.html"))
    for skipped in report.skipped:
        print(f"advgame report: skipped {skipped}", file=sys.stderr)
    try:
        page = render(report)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        print(
            f"advgame report: cannot render the inputs ({type(err).__name__}: {str(err)[:200]}); check the "
            "result files are ones written by `advgame eval` / `advgame redteam`",
            file=sys.stderr,
        )
        return 1
    try:
        write_text_atomic(out, page)
    except OSError as err:
        from advgame.paths import describe_os_error

        print(f"advgame report: cannot write {out}: {describe_os_error(err)}", file=sys.stderr)
        return 1
    print(
        f"wrote {out} ({len(report.evals)} eval result(s), {len(report.redteams)} redteam summary(ies)"
        + (f", {len(report.skipped)} input(s) skipped" if report.skipped else "")
        + ")"
    )
    return 0
