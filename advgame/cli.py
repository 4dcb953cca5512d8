"""The `advgame` command: train, eval, redteam, serve, report.

Every subcommand has --help. Subcommands whose capability has not landed yet say so and exit 2.
Configuration errors print one line naming the key, the value and what is allowed, and exit 1,
before any model is loaded.
"""

from __future__ import annotations

import argparse
import sys

from advgame import __version__

EXIT_CONFIG_ERROR = 1
EXIT_NOT_BUILT = 2


def _not_built(what: str):
    def run(args: argparse.Namespace) -> int:
        print(f"advgame {args.command}: {what} is not built yet in advgame {__version__}.", file=sys.stderr)
        return EXIT_NOT_BUILT

    return run


def _train(args: argparse.Namespace) -> int:
    from advgame.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"advgame train: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
        return 0
    print(
        f"advgame train: config '{args.config}' is valid ({cfg.loss.type}, EMA "
        f"{'on' if cfg.ema.enabled else 'off'}), but the game loop is not built yet in advgame {__version__}.",
        file=sys.stderr,
    )
    return EXIT_NOT_BUILT


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
        description="Train both players from a YAML preset. Any field can be overridden: optim.lr=1e-5 ema.decay=0.9",
    )
    train.add_argument("config", help="YAML preset, e.g. configs/cpu_demo.yaml")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. loss.beta=0.2")
    train.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    train.set_defaults(run=_train)

    for name, summary, what in [
        ("eval", "score a model on safety, over-refusal and utility benchmarks", "the evaluation suite"),
        ("redteam", "run the trained Attacker, PAIR, TAP and GCG against a target", "red-teaming"),
        ("serve", "serve a checkpoint over an OpenAI-compatible API", "the server"),
        ("report", "render a run's curves and results as an HTML page", "reporting"),
    ]:
        p = sub.add_parser(name, help=f"{summary} (not built yet)", description=f"{summary[0].upper()}{summary[1:]}.")
        p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(run=_not_built(what))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
