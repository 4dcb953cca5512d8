"""Strict CSV/TSV reading: one stray quote must be an error naming its line, never silently lost rows.

Python's `csv` module, left to itself, reads a stray `"` as the start of a quoted field that runs on to the
next quote, many lines later: the rows in between become part of one giant field and the file loses them
without a word. `read_table` reads with `strict=True` (a quote in the wrong place is an error) and then
refuses, naming the line where the record starts:

  * a row with more fields than the header, or fewer on a record running over several lines (a short row on
    one line is read with the missing trailing fields None, as spreadsheets write them);
  * a quoted field running over several lines, most of whose lines (three or more) are themselves whole rows
    (the header's number of fields, two or more) -- rows swallowed by an unbalanced quote;
  * a field running over several lines that is far longer than the rest of its column (over
    `OUTLIER_FACTOR` times the column's median and over `OUTLIER_MIN_CHARS` characters).

Legitimate multi-line fields (HarmBench's contexts, prompts with line breaks) pass: they are not whole rows
and not outliers of their column.
"""

from __future__ import annotations

import csv
import io
import statistics

from advgame.errors import DataError

OUTLIER_FACTOR = 20
OUTLIER_MIN_CHARS = 2000


class TableError(DataError):
    """A CSV/TSV file that cannot be read strictly; the message names the line."""


def read_table(text: str, delimiter: str = ",") -> tuple[list[str], list[tuple[int, dict[str, str | None]]]]:
    """(header, [(line number where the record starts, row dict)]) of a CSV/TSV text with a header row.
    Blank lines are skipped. Raises `TableError` (see the module docstring)."""
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    kind = "TSV" if delimiter == "\t" else "CSV"
    try:
        header = next(reader, None)
    except csv.Error as err:
        raise TableError(f"malformed {kind} header on line 1: {err}") from None
    if not header:
        raise TableError("no header row")
    ncols = len(header)
    rows: list[tuple[int, list[str], int]] = []  # (first line, fields, last line)
    start = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise TableError(
                f"malformed {kind} in the record starting on line {start} (read up to line "
                f"{reader.line_num}): {err}; a stray or unbalanced quote?"
            ) from None
        end = reader.line_num
        if fields and any(f.strip() for f in fields):
            if len(fields) > ncols or (len(fields) < ncols and end > start):
                spans = f" (it runs over lines {start}-{end}: an unbalanced quote?)" if end > start else ""
                raise TableError(f"line {start}: {len(fields)} field(s), the header has {ncols}{spans}")
            rows.append((start, fields + [None] * (ncols - len(fields)), end))
        start = end + 1
    _check_multiline(header, rows, delimiter)
    return header, [(line, dict(zip(header, fields, strict=True))) for line, fields, _ in rows]


def _check_multiline(header: list[str], rows: list[tuple[int, list[str], int]], delimiter: str) -> None:
    multi = [(line, fields, end) for line, fields, end in rows if end > line]
    if not multi:
        return
    ncols = len(header)
    medians = {}
    for col in range(ncols):
        lengths = [len(fields[col]) for _, fields, _ in rows if fields[col]]  # None or "" ignored
        medians[col] = statistics.median(lengths) if lengths else 0
    for line, fields, end in multi:
        for col, value in enumerate(fields):
            if value is None or ("\n" not in value and "\r" not in value):
                continue
            if ncols >= 2:
                inner = [x for x in value.splitlines()[1:] if x.strip()]
                whole = sum(1 for x in inner if _fields_of(x, delimiter) == ncols)
                if whole >= 3 and 2 * whole > len(inner):
                    raise TableError(
                        f"line {line}: the quoted field '{header[col]}' runs over lines {line}-{end} and "
                        f"holds {whole} lines that look like whole rows: a stray or unbalanced quote?"
                    )
            if len(value) > OUTLIER_MIN_CHARS and len(value) > OUTLIER_FACTOR * max(medians[col], 1):
                raise TableError(
                    f"line {line}: the field '{header[col]}' runs over lines {line}-{end} and "
                    f"is {len(value)} characters, far longer than the rest of its column "
                    f"(median {medians[col]:.0f}): a stray "
                    "or unbalanced quote?"
                )


def _fields_of(line: str, delimiter: str) -> int:
    try:
        return len(next(csv.reader([line], delimiter=delimiter)))
    except (csv.Error, StopIteration):
        return 0
