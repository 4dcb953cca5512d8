"""The `advgame` command: train, eval, redteam, serve, report.

Every subcommand has --help and lives in its own package's `cli.py` (`register(sub)` adds it). train, eval
and redteam read a typed YAML config with dotted key=value overrides (`advgame.config.load`); eval's and
redteam's flags are shortcuts for config keys (`advgame.config.flags`).
Configuration errors print one line naming the key, the value and what is allowed, and exit 1,
before any model is loaded.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from advgame import __version__
from advgame.eval.cli import register as register_eval
from advgame.redteam.cli import register as register_redteam
from advgame.report.cli import register as register_report
from advgame.serve.cli import register as register_serve

EXIT_CONFIG_ERROR = 1


def _train(args: argparse.Namespace) -> int:
    from advgame.config import ConfigError, load_config
    from advgame.config.flags import split_config_argument

    split_config_argument(args)  # `advgame train --resume RUN key=value`: no CONFIG given
    if args.resume and not args.config:
        args.config = str(Path(args.resume) / "config.yaml")
    if not args.config:
        print("advgame train: give a CONFIG, or --resume RUN_DIR", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"advgame train: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    from advgame.train.launcher import apply_launcher_env

    try:
        cfg = apply_launcher_env(cfg, os.environ)
    except ConfigError as err:  # LauncherError, or a launcher setting the config refuses
        print(f"advgame train: launch error: {err}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
        return 0
    if args.num_processes > 1 and "WORLD_SIZE" not in os.environ:
        return _relaunch(args)
    from advgame.paths import writable_dir_problem
    from advgame.train.run import run_training
    from advgame.train.trainer import run_dir_for

    target = args.run_dir or args.resume
    if problem := writable_dir_problem(target or run_dir_for(cfg)):
        print(f"advgame train: run directory: {problem}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    return run_training(cfg, run_dir=target, resume=bool(args.resume))


def _relaunch(args: argparse.Namespace) -> int:
    """`advgame train --num-processes N ...` = `torchrun --standalone --nproc-per-node N -m advgame train
    ...`."""
    import subprocess

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={args.num_processes}",
        "-m",
        "advgame",
        "train",
    ]
    cmd += [args.config] if args.config else []
    cmd += args.overrides
    cmd += ["--run-dir", args.run_dir] if args.run_dir else []
    cmd += ["--resume", args.resume] if args.resume else []
    return subprocess.call(cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="advgame",
        description="Safety alignment of LMs as a non-cooperative Attacker/Defender game (AdvGame).",
    )
    parser.add_argument("--version", action="version", version=f"advgame {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train",
        help="train an Attacker and a Defender jointly",
        description="Train both players from a YAML preset. Any field can be overridden: optim.lr=1e-5 "
        "ema.decay=0.9",
    )
    train.add_argument(
        "config", nargs="?", help="YAML preset, e.g. configs/cpu_demo.yaml (optional with --resume)"
    )
    train.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. loss.beta=0.2"
    )
    train.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    train.add_argument("--run-dir", help="output directory (default: OUTPUT_DIR/NAME from the config)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    train.add_argument(
        "--num-processes",
        type=int,
        default=1,
        metavar="N",
        help="data-parallel processes on this machine (relaunches under torchrun; `accelerate launch -m "
        "advgame train ...` and `torchrun` work too)",
    )
    train.set_defaults(run=_train)

    for register in (register_eval, register_redteam, register_serve, register_report):
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # `advgame train CONFIG --run-dir X key=value`: argparse stops collecting positionals at an option
        overrides = [e for e in extra if "=" in e and not e.startswith("-")]
        if not hasattr(args, "overrides") or len(overrides) != len(extra):
            parser.error(
                "unrecognized arguments: "
                f"{' '.join(e for e in extra if e not in overrides) or ' '.join(extra)}"
            )
        args.overrides += overrides
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
