"""Read a data file into a list of row dicts, by extension: .csv, .tsv, .jsonl, .json, .yaml, .parquet.

Errors are one line naming the file and what was wrong (a bad --data-file must not give a traceback).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from advgame.data.strict_csv import TableError, read_table

ROWS_READ: dict[str, int] = {}  # path -> rows its last read returned (eval reports rows read vs items kept)


class DataFileError(ValueError):
    """A data file that cannot be read or lacks the columns its benchmark needs."""


def read_rows(path: Path) -> list[dict]:
    """Rows of a tabular file; .yaml returns the parsed document wrapped in a one-element list."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):  # strict: a stray quote is an error naming its line, not lost rows
            text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's BOM is not a column
            if not text.strip():
                return []
            try:
                _, rows = read_table(text, delimiter="\t" if suffix == ".tsv" else ",")
            except TableError as err:
                raise DataFileError(f"{path}: {err}") from None
            ROWS_READ[str(path)] = len(rows)
            return [row for _, row in rows]
        if suffix == ".jsonl":
            rows = []
            for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise DataFileError(f"{path}: line {k} is not JSON ({err.msg})") from err
            ROWS_READ[str(path)] = len(rows)
            return rows
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            return data if isinstance(data, list) else [data]
        if suffix in (".yaml", ".yml", ".prompt"):
            from advgame.config.load import safe_load  # bounded aliases: no YAML bomb

            return [safe_load(path.read_text(encoding="utf-8"))]
        if suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError as err:
                raise DataFileError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from err
            return pq.read_table(path).to_pylist()
    except (OSError, UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as err:
        raise DataFileError(
            f"{path}: cannot read ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
        ) from err
    raise DataFileError(
        f"{path}: unsupported extension '{suffix}' (use .csv, .tsv, .jsonl, .json, .yaml or .parquet)"
    )


def require_columns(path: Path, rows: list[dict], *columns: str) -> None:
    """Fail naming the missing columns when the first row lacks any of `columns`."""
    if not rows:
        raise DataFileError(f"{path}: no rows")
    if not isinstance(rows[0], dict):
        raise DataFileError(f"{path}: rows must be objects with named fields")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise DataFileError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, rows[0]))}"
        )
