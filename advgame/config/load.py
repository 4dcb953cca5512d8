"""Read a YAML preset, apply `a.b.c=value` overrides, validate, and explain failures in one line.

A preset may start from another one with ``base: other.yaml`` (a path relative to the preset); the
preset's own keys are merged over the base's, section by section.

The same loader serves `advgame train` (RunConfig), `advgame eval` (EvalConfig) and `advgame redteam`
(RedteamConfig): `load_config(path, overrides, schema=...)`. Later values win: the schema's defaults, then
the file, then the `key=value` overrides in order, then `values` (the commands' flag shortcuts).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from advgame.config.schema import RunConfig
from advgame.errors import ConfigError

_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
MAX_EXPANDED_NODES = (
    100_000  # YAML nodes a document may expand to through aliases (a "billion laughs" is 10**9)
)
MAX_ECHO = 120  # characters of a value an error message shows
Model = TypeVar("Model", bound=BaseModel)


def shorten(value: Any, limit: int = MAX_ECHO) -> str:
    """repr(value), cut to `limit` characters (an error must not echo a huge value back)."""
    text = (
        repr(value)
        if not isinstance(value, (dict, list)) or len(value) < 50
        else f"<{type(value).__name__} of {len(value)}>"
    )
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text)} chars)"


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses a document whose aliases expand past MAX_EXPANDED_NODES nodes (an alias bomb:
    a few lines that reference each other expand exponentially once anything walks or prints the value)."""

    def compose_document(self):
        node = super().compose_document()
        sizes: dict[int, int] = {}

        def size(n) -> int:
            if id(n) in sizes:
                return sizes[id(n)]
            sizes[id(n)] = 1  # a recursive alias counts once here
            children = (
                n.value
                if isinstance(n, yaml.SequenceNode)
                else [x for pair in n.value for x in pair]
                if isinstance(n, yaml.MappingNode)
                else []
            )
            total = 1
            for child in children:
                total += size(child)
                if total > MAX_EXPANDED_NODES:
                    break
            sizes[id(n)] = total
            return total

        if node is not None and size(node) > MAX_EXPANDED_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"its aliases expand to more than {MAX_EXPANDED_NODES} values (an alias bomb?)",
                node.start_mark,
            )
        return node


def safe_load(text: str) -> Any:
    """yaml.safe_load with a bound on alias expansion."""
    return yaml.load(text, Loader=_BoundedLoader)


def load_config(
    path: str | Path | None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    schema: type[Model] = RunConfig,
    values: dict[str, Any] | None = None,
) -> Model:
    """Load and validate a config of type `schema` from `path` (None: from the defaults alone) with
    command-line `overrides` applied, then `values` ({dotted key: value}, already typed: flag shortcuts)."""
    raw = _read_yaml_with_base(Path(path), seen=()) if path is not None else {}
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
    for key, value in (values or {}).items():
        set_dotted(raw, key, value)
    return validate_config(raw, source=str(path or "command line"), schema=schema)


def validate_config(raw: dict[str, Any], source: str = "<config>", schema: type[Model] = RunConfig) -> Model:
    try:
        return schema.model_validate(raw)
    except ValidationError as err:
        problems = [_describe(e, schema) for e in err.errors()[:10]]
        more = f"; and {err.error_count() - 10} more" if err.error_count() > 10 else ""
        raise ConfigError(f"{source}: " + "; ".join(problems)[:2000] + more) from None


def parse_override(item: str) -> tuple[str, Any]:
    """`optim.lr=1e-5` -> ('optim.lr', 1e-05). The value is read as YAML, so lists and booleans work."""
    key, sep, text = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{item}' is not of the form section.key=value")
    try:
        value = safe_load(text) if text != "" else ""
    except yaml.YAMLError as err:
        raise ConfigError(
            f"override '{shorten(item)[1:-1]}': value is not valid YAML ({getattr(err, 'problem', err)})"
        ) from None
    if isinstance(value, str) and _FLOAT.fullmatch(value):
        value = float(value)  # YAML 1.1 reads '1e-5' (no dot) as a string
    return key, value


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            prefix = ".".join(parts[: i + 1])
            raise ConfigError(f"override '{key}': '{prefix}' is a value ({shorten(child)}), not a section")
        node = child
    node[parts[-1]] = value


def _read_yaml_with_base(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"config 'base' chain loops back to {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {err.object[err.start : err.start + 1]!r} at offset "
            f"{err.start}); save the config as UTF-8"
        ) from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        data = safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    parent = _read_yaml_with_base(path.parent / str(base), seen + (path.resolve(),))
    return _deep_merge(parent, data)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(error: dict[str, Any], schema: type[BaseModel]) -> str:
    loc = [str(p) for p in error["loc"]]
    key = shorten(".".join(loc))[1:-1]
    if error["type"] == "extra_forbidden":
        allowed = _fields_at(loc[:-1], schema)
        hint = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        return f"unknown key '{key}'{hint}"
    if error["type"] == "missing":
        return f"missing required key '{key}'"
    where = f"'{key}'" if key else "config"
    value = error.get("input")
    shown = f"={shorten(value)}" if key and not isinstance(value, dict) else ""
    return f"{where}{shown}: {error['msg']}"


def _fields_at(loc: list[str], schema: type[BaseModel]) -> list[str]:
    """Field names of the config section at `loc` (best effort, for error hints)."""
    model: type[BaseModel] | None = schema
    for part in loc:
        field = model.model_fields.get(part) if model else None
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if model else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found:
            return found
    return None
