"""Tabular game testbed benchmark: every method at judge noise 0 and 0.2 (docs/testbed.md).

    .venv/bin/python bench/testbed.py [extra flags for `python -m advgame.testbed run`]

Writes bench/results/testbed_noise0.0.{png,json} and bench/results/testbed_noise0.2.{png,json}.
"""

from __future__ import annotations

import sys

from advgame.testbed.run import main

if __name__ == "__main__":
    for noise in ("0.0", "0.2"):
        code = main(["run", "--noise", noise, *sys.argv[1:]])
        if code:
            raise SystemExit(code)
