"""Command-line flags as shortcuts for config keys, for `advgame eval` and `advgame redteam`.

    advgame eval [CONFIG.yaml] [key=value ...] [--flag value ...]

Each flag sets one dotted key of the command's typed config (`shortcut(group, schema, "--limit", "limit")`),
and its help shows that key and the schema's default. A flag is recorded only when given (its argparse
default is SUPPRESS), so `given(args)` is exactly what the command line set. Precedence, later wins:
the schema's defaults, the CONFIG file, the key=value overrides in order, the flags.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

PREFIX = "cfg:"  # argparse dest of a shortcut: PREFIX + dotted key


def add_command(sub, name: str, summary: str, schema: type[BaseModel], example: str):
    """A config-driven subcommand: its parser (CONFIG and KEY=VALUE positionals) and its `flag(group, flag,
    key, help="", **argparse_kwargs)` that adds a shortcut for one key of `schema`."""
    parser = sub.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}. Flags are shortcuts for config "
        "keys (named in [...]); they override the CONFIG file and the KEY=VALUE overrides.",
    )
    parser.add_argument("config", nargs="?", metavar="CONFIG", help=f"YAML config, e.g. {example} (optional)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. seed=1")

    def flag(group, flag_name: str, key: str, help: str = "", **kwargs) -> None:
        shortcut(group, schema, flag_name, key, help, **kwargs)

    return parser, flag


def split_config_argument(args: argparse.Namespace) -> None:
    """`advgame eval key=value ...` without a CONFIG: the first positional is an override, not a file."""
    if args.config and "=" in args.config and not args.config.endswith((".yaml", ".yml")):
        args.overrides.insert(0, args.config)
        args.config = None


def field_of(schema: type[BaseModel], key: str) -> FieldInfo:
    """The schema's field for dotted `key`."""
    model, *parents, leaf = [schema, *key.split(".")]
    for part in parents:
        model = model.model_fields[part].annotation
    return model.model_fields[leaf]


def shortcut(group, schema: type[BaseModel], flag: str, key: str, help: str = "", **kwargs) -> None:
    """Add `flag` as a shortcut for config `key` (see the module docstring); the help defaults to the
    field's description."""
    field = field_of(schema, key)
    default = field.default_factory() if field.default_factory is not None else field.default
    shown = "" if default is None else f"; default: {default}"
    shown = "; required" if default is PydanticUndefined else shown
    text = f"{help or field.description or ''} [{key}{shown}]".strip().replace("%", "%%")
    if "choices" not in kwargs and kwargs.get("action") not in ("store_const", "store_true", "store_false"):
        kwargs.setdefault("metavar", flag.lstrip("-").upper().replace("-", "_"))
    group.add_argument(flag, dest=PREFIX + key, default=argparse.SUPPRESS, help=text, **kwargs)


def given(args: argparse.Namespace) -> dict[str, Any]:
    """{dotted key: value} for every shortcut flag on the command line."""
    return {k[len(PREFIX) :]: v for k, v in vars(args).items() if k.startswith(PREFIX)}


def load_command_config(
    command: str, schema: type[BaseModel], args: argparse.Namespace, values: dict[str, Any]
):
    """The command's config from its CONFIG file, overrides and flag `values`; None after printing a one-line
    error (the caller exits 1)."""
    from advgame.config.load import ConfigError, load_config

    split_config_argument(args)
    try:
        return load_config(args.config, args.overrides, schema=schema, values=values)
    except ConfigError as err:
        print(f"advgame {command}: config error: {err}", file=sys.stderr)
        return None
