"""Seed prompts of the game, and the deterministic, resumable stream that feeds them to training.

A seed is a plain request of one class: ``harmful`` (the Attacker rewrites it to get it answered; the
Defender should refuse) or ``benign`` (it looks harmful but is not; the Defender should help).
`load_seeds(spec, category)` reads one class from any of these sources:

    builtin:NAME                                a JSONL set shipped in the package (see `builtin_names()`)
    path/to/file.jsonl                          one JSON object per line
    path/to/file.csv, path/to/file.tsv          a header row, then one row per prompt
    owner/dataset[:config[:data_type]]          a Hugging Face dataset, e.g. the paper's training data
                                                ``allenai/wildjailbreak:train:vanilla_harmful``

Row schema (column names are case-insensitive; other columns are ignored):

* the prompt: the first column present among ``prompt, vanilla, adversarial, text, question, goal,
  behavior, instruction, query`` (``vanilla`` / ``adversarial`` are raw WildJailbreak; ``goal`` AdvBench;
  ``behavior`` HarmBench). A raw WildJailbreak row whose ``data_type`` is ``adversarial_*`` takes its
  prompt from the ``adversarial`` column.
* its class, optional, from the first of these present: ``category`` (harmful / benign), ``data_type``
  (WildJailbreak: ``vanilla_harmful`` / ``adversarial_harmful`` -> harmful, ``*_benign`` -> benign), or
  ``label`` (harmful / unsafe -> harmful, benign / safe -> benign, as in XSTest). A row of the other class
  is skipped, so one file may hold both classes; a row with no class is taken to be of the requested one.
  An unknown class value is an error.

Prompts are stripped; empty ones are dropped and exact duplicates keep their first occurrence; a log line
reports rows read vs prompts kept (a warning when any row was dropped). CSV/TSV files are read strictly
(`strict_csv`): a stray quote, a row with the wrong number of fields, or a line-spanning field far longer
than the rest is an error naming the line, never silently lost rows. Every problem with the input raises
`SeedDataError` (a ValueError) that names the file and what was wrong. `check_lengths` enforces the run's
prompt budget (data.max_seed_chars) when the data loads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from advgame.data.strict_csv import TableError, read_table
from advgame.errors import DataError

log = logging.getLogger(__name__)

Category = Literal["harmful", "benign"]
CATEGORIES: tuple[str, ...] = ("harmful", "benign")

PROMPT_COLUMNS = (
    "prompt",
    "vanilla",
    "adversarial",
    "text",
    "question",
    "goal",
    "behavior",
    "instruction",
    "query",
)
LABELS = {"harmful": "harmful", "unsafe": "harmful", "benign": "benign", "safe": "benign"}
FILE_SUFFIXES = (".jsonl", ".csv", ".tsv")
# datasets that need loader arguments to be read correctly
HUB_LOAD_KWARGS = {"allenai/wildjailbreak": {"delimiter": "\t", "keep_default_na": False}}
_NETWORK_ERROR = re.compile(r"connect|timeout|timed out|resolve|unreachable", re.IGNORECASE)
_HUB_SPEC = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?::(?P<config>[\w.-]*))?(?::(?P<data_type>[\w.-]+))?$")


class SeedDataError(DataError):
    """Seed prompts could not be loaded: the message names the source and what was wrong."""


@dataclass(frozen=True)
class SeedPrompt:
    """One seed request. `source` is where it came from (the spec); `id` is stable within that source."""

    text: str
    category: Category
    source: str
    id: str = ""


# ------------------------------------------------------------------------------------------- loading


def builtin_names() -> list[str]:
    """Names of the seed sets shipped in the package (use them as ``builtin:NAME``)."""
    root = resources.files("advgame.data") / "builtin"
    return sorted(e.name[: -len(".jsonl")] for e in root.iterdir() if e.name.endswith(".jsonl"))


def load_seeds(spec: str, category: str) -> list[SeedPrompt]:
    """The seeds of class `category` ('harmful' or 'benign') from `spec` (see the module docstring)."""
    if category not in CATEGORIES:
        raise ValueError(f"category must be 'harmful' or 'benign', got {category!r}")
    spec = spec.strip()
    if spec.startswith("builtin:"):
        return _load_builtin(spec[len("builtin:") :], category)
    path = Path(spec).expanduser()
    if path.is_file():
        return _load_file(path, category)
    if path.is_dir():
        raise SeedDataError(f"seed source {spec} is a directory; pass a .jsonl, .csv or .tsv file")
    if path.suffix.lower() in FILE_SUFFIXES + (".json", ".parquet") or spec.startswith((".", "/", "~")):
        raise SeedDataError(f"seed file not found: {path}")
    match = _HUB_SPEC.match(spec)
    if match:
        return _load_hub(spec, match["repo"], match["config"] or None, match["data_type"], category)
    raise SeedDataError(
        f"unrecognised seed source {spec!r}: expected 'builtin:NAME' ({', '.join(builtin_names())}), "
        "a local .jsonl/.csv/.tsv file, or a hub dataset 'owner/name[:config[:data_type]]'"
    )


def _load_builtin(name: str, category: str) -> list[SeedPrompt]:
    entry = resources.files("advgame.data") / "builtin" / f"{name}.jsonl"
    if not entry.is_file():
        raise SeedDataError(f"unknown builtin seed set {name!r}; available: {', '.join(builtin_names())}")
    origin = f"builtin:{name}"
    return _to_seeds(_parse_jsonl(entry.read_text(encoding="utf-8"), origin), category, origin)


def _load_file(path: Path, category: str) -> list[SeedPrompt]:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise SeedDataError(f"{path}: unsupported seed file type {suffix!r}; use .jsonl, .csv or .tsv")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise SeedDataError(f"{path}: not UTF-8 text ({err})") from err
    if not text.strip():
        raise SeedDataError(f"{path}: the file is empty")
    rows = _parse_jsonl(text, str(path)) if suffix == ".jsonl" else _parse_table(text, str(path), suffix)
    return _to_seeds(rows, category, str(path))


def _parse_jsonl(text: str, origin: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-blank line."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise SeedDataError(f"{origin}: bad JSON on line {lineno}: {err.msg}") from err
        if not isinstance(row, dict):
            raise SeedDataError(f"{origin}: line {lineno} is not a JSON object (got {type(row).__name__})")
        rows.append((lineno, row))
    if not rows:
        raise SeedDataError(f"{origin}: the file is empty")
    return rows


def _parse_table(text: str, origin: str, suffix: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for every data row of a CSV (comma) or TSV (tab) file with a header, read
    strictly."""
    try:
        header, rows = read_table(text, delimiter="\t" if suffix == ".tsv" else ",")
    except TableError as err:
        raise SeedDataError(f"{origin}: {err}") from None
    if not rows:
        raise SeedDataError(f"{origin}: no data rows below the header {header}")
    return rows


def _load_hub(
    spec: str, repo: str, config: str | None, data_type: str | None, category: str
) -> list[SeedPrompt]:
    """A hub dataset, e.g. allenai/wildjailbreak (gated: accept its terms and log in first)."""
    from advgame.extras import require

    datasets = require("datasets")
    if data_type is None and repo == "allenai/wildjailbreak":
        data_type = f"vanilla_{category}"
    try:
        loaded = datasets.load_dataset(repo, config, **HUB_LOAD_KWARGS.get(repo, {}))
    except Exception as err:  # the hub raises many types: all mean "not available"
        raise SeedDataError(_hub_failure(repo, category, err)) from err
    ds = loaded["train"] if "train" in loaded else loaded[next(iter(loaded))]
    if data_type:
        if "data_type" not in ds.column_names:
            raise SeedDataError(
                f"{spec}: no 'data_type' column to select {data_type!r} (columns: {ds.column_names})"
            )
        kinds = sorted(ds.unique("data_type"))
        if data_type not in kinds:
            raise SeedDataError(f"{spec}: no rows with data_type={data_type!r}; values found: {kinds}")
        ds = ds.filter(lambda batch: [d == data_type for d in batch["data_type"]], batched=True)
    keep = [
        c for c in ds.column_names if c.lower() in PROMPT_COLUMNS + ("category", "data_type", "label", "id")
    ]
    rows = list(enumerate(ds.select_columns(keep).to_list(), start=1))
    return _to_seeds(rows, category, spec)


def _hub_failure(repo: str, category: str, err: Exception) -> str:
    fix = f"pass a local .jsonl/.csv with a 'prompt' column (data.{category}=path)"
    text = f"{type(err).__name__}: {err}"
    offline = any(
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
        for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    )
    if offline:
        why = "HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set and it is not in the local cache"
        return f"offline, could not reach the hub for {repo} ({why}); {fix}"
    if re.search(r"gated|401|403|authenticat|unauthori", text, re.IGNORECASE):
        return (
            f"could not load {repo} from the hub: access denied ({text}). Gated datasets "
            f"(WildJailbreak is one) need their terms accepted on huggingface.co and a login "
            f"(`hf auth login`); or {fix}"
        )
    if isinstance(err, (ConnectionError, TimeoutError)) or re.search(_NETWORK_ERROR, text):
        return f"offline, could not reach the hub for {repo} ({text}); {fix}"
    return f"could not load {repo} from the hub ({text}); {fix}"


# -------------------------------------------------------------------------------------- row schema


def _to_seeds(rows: list[tuple[int, dict[str, Any]]], category: str, origin: str) -> list[SeedPrompt]:
    """Seeds of `category` from parsed rows; see the module docstring for the schema."""
    rows = [(n, {str(k).strip().lower(): v for k, v in row.items()}) for n, row in rows]
    columns = list(dict.fromkeys(k for _, row in rows[:1000] for k in row))
    prompt_column = next((c for c in PROMPT_COLUMNS if c in columns), None)
    if prompt_column is None:
        raise SeedDataError(
            f"{origin}: no prompt column (looked for {', '.join(PROMPT_COLUMNS)}; "
            f"found: {', '.join(columns) or 'none'})"
        )
    counts: Counter[str] = Counter()
    seeds, seen, empty, duplicates = [], set(), 0, 0
    for lineno, row in rows:
        row_category = _row_category(row, f"{origin} line {lineno}") or category
        counts[row_category] += 1
        if row_category != category:
            continue
        column = prompt_column
        if str(row.get("data_type") or "").startswith("adversarial") and row.get("adversarial"):
            column = "adversarial"
        value = row.get(column)
        text = "" if value is None else str(value).strip()
        if not text:
            empty += 1
        elif text in seen:
            duplicates += 1
        else:
            seen.add(text)
            ident = str(row["id"]) if row.get("id") not in (None, "") else f"{lineno}"
            seeds.append(SeedPrompt(text=text, category=category, source=origin, id=ident))
    other = len(rows) - counts[category]
    report = (
        f"{origin}: {len(rows)} rows read, {len(seeds)} {category} prompts kept; dropped {empty} empty and "
        f"{duplicates} duplicate {category} prompt(s); {other} row(s) of the other class"
    )
    log.log(logging.WARNING if empty or duplicates else logging.INFO, report)
    if not seeds:
        found = ", ".join(f"{counts[c]} {c}" for c in CATEGORIES) + (
            f", {empty} {category} empty" if empty else ""
        )
        raise SeedDataError(f"{origin}: no {category} prompts ({len(rows)} rows read: {found})")
    return seeds


def _row_category(row: dict[str, Any], where: str) -> str | None:
    """The class a row declares (category, then data_type, then label), or None if it declares none."""
    for key in ("category", "data_type", "label"):
        value = row.get(key)
        if value is None or str(value).strip() == "":
            continue
        name = str(value).strip().lower()
        if key == "data_type":
            name = name.rsplit("_", 1)[-1]
        if name in LABELS:
            return LABELS[name]
        raise SeedDataError(f"{where}: {key}={value!r} is not a known class (harmful/benign, unsafe/safe)")
    return None


def check_lengths(seeds: list[SeedPrompt], max_chars: int, truncate: bool = False) -> list[SeedPrompt]:
    """Seeds within the prompt budget of `max_chars` characters: a longer one is an error naming it (found
    when the data loads, not as an out-of-memory error mid-run), or with `truncate` is cut to the budget
    (logged)."""
    out, cut = [], 0
    for s in seeds:
        if len(s.text) <= max_chars:
            out.append(s)
        elif truncate:
            out.append(SeedPrompt(text=s.text[:max_chars], category=s.category, source=s.source, id=s.id))
            cut += 1
        else:
            raise SeedDataError(
                f"{s.source}: seed {s.id} is {len(s.text)} characters, over data.max_seed_chars={max_chars}; "
                "shorten it, raise the budget, or set data.truncate_long_seeds=true"
            )
    if cut:
        log.warning("%s: %d seed(s) truncated to data.max_seed_chars=%d", seeds[0].source, cut, max_chars)
    return out


# ---------------------------------------------------------------------------------- splits, streams


def split_heldout(
    seeds: list[SeedPrompt], n_heldout: int, seed: int
) -> tuple[list[SeedPrompt], list[SeedPrompt]]:
    """(train, heldout): `n_heldout` seeds drawn with `random.Random(seed)`; both keep the input order."""
    if not 0 <= n_heldout <= len(seeds):
        raise SeedDataError(f"cannot hold out {n_heldout} of {len(seeds)} seeds")
    chosen = set(random.Random(seed).sample(range(len(seeds)), n_heldout))
    train = [s for i, s in enumerate(seeds) if i not in chosen]
    heldout = [s for i, s in enumerate(seeds) if i in chosen]
    return train, heldout


def fingerprint(seeds: Iterable[SeedPrompt]) -> str:
    """A short hash of the seed texts, stored with a stream's state to notice changed data on resume."""
    digest = hashlib.sha256()
    for s in seeds:
        digest.update(s.text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


class SeedStream:
    """An endless stream of seed batches in shuffled epochs, deterministic and resumable.

    Epoch e visits every seed once in the order of `random.Random(seed + e).shuffle`; a batch may span
    an epoch boundary. `state_dict()` is JSON-serialisable; after `load_state_dict` the stream continues
    exactly as an uninterrupted one would.
    """

    def __init__(self, seeds: list[SeedPrompt], batch_size: int, seed: int):
        if not seeds:
            raise SeedDataError("cannot stream an empty list of seeds")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.seeds = list(seeds)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._order = self._epoch_order()
        self._fingerprint = fingerprint(self.seeds)

    def _epoch_order(self) -> list[int]:
        order = list(range(len(self.seeds)))
        random.Random(self.seed + self.epoch).shuffle(order)
        return order

    def next_batch(self) -> list[SeedPrompt]:
        batch = []
        while len(batch) < self.batch_size:
            if self.position == len(self.seeds):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._epoch_order()
            batch.append(self.seeds[self._order[self.position]])
            self.position += 1
        return batch

    def __iter__(self) -> Iterator[list[SeedPrompt]]:
        return self

    def __next__(self) -> list[SeedPrompt]:
        return self.next_batch()

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "num_seeds": len(self.seeds),
            "fingerprint": self._fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`. Seeds that changed since it was saved break exact resumption: warned."""
        if (
            state.get("num_seeds", len(self.seeds)) != len(self.seeds)
            or state.get("fingerprint", self._fingerprint) != self._fingerprint
        ):
            log.warning(
                "seed stream state was saved for other seeds (%s seeds, now %d): resuming, but not exactly",
                state.get("num_seeds"),
                len(self.seeds),
            )
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.position = min(int(state["position"]), len(self.seeds))
        self._order = self._epoch_order()
