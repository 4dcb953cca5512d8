"""Run a training job from the command line: clear one-line errors for bad inputs, a summary at the end.

Only the project's own errors (`advgame.errors`) become one line; any other exception is a bug and keeps
its traceback."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from advgame.config.schema import RunConfig

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 130


def run_training(cfg: RunConfig, run_dir: str | None = None, resume: bool = False) -> int:
    from advgame.errors import AdvGameError
    from advgame.train.checkpoint import has_checkpoint
    from advgame.train.trainer import run_dir_for, train

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    target = Path(run_dir) if run_dir else run_dir_for(cfg)
    if not resume and has_checkpoint(target):
        print(
            f"advgame train: {target} already holds a run; continue it with --resume {target}, "
            "or choose another name= / --run-dir",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if resume and not has_checkpoint(target):
        print(
            f"advgame train: {target} holds no complete checkpoint (killed before the first one was "
            "written): starting it from step 0",
            file=sys.stderr,
        )
    try:
        out = train(cfg, target, resume=resume)
    except AdvGameError as err:  # bad input (config, data, model, checkpoint, judges): one line
        print(f"advgame train: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # disk full, a directory that became unwritable: the last checkpoint is intact
        from advgame.paths import describe_os_error

        print(
            f"advgame train: cannot write the run's files: {describe_os_error(err)}; the last complete "
            f"checkpoint is intact: free space or fix {target}, then continue with --resume {target}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            f"\nadvgame train: interrupted; continue with: advgame train --resume {target}", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    if os.environ.get("RANK", "0") == "0":
        print(f"run finished: {out}")
    return EXIT_OK
