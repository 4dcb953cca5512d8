"""Utility benchmarks: lm-eval-harness tasks, and pairwise win rate against a baseline's answers.

    mmlu, ifeval, ifbench   lm-eval-harness tasks (optional extra `eval`); their data comes from the hub
                            through lm-eval, so offline they need a local data file (see advgame.eval.lm_eval)
    alpacaeval              AlpacaEval instructions (`instruction`, optional `output` = the baseline's answer)
    arenahard               ArenaHard questions (`question_id`/`uid`, `category`, `turns[0].content`/`prompt`)

Win-rate benchmarks read the baseline's answers from `--baseline-answers NAME=PATH` (JSONL with `id` and
`output`), or from the items file's `output` column when it has one (AlpacaEval ships its reference answers).
"""

from __future__ import annotations

from pathlib import Path

from advgame.eval.benchmarks.base import EvalItem
from advgame.eval.benchmarks.files import DataFileError, read_rows, require_columns
from advgame.eval.benchmarks.safety import _hid


def parse_alpacaeval(path: Path) -> list[EvalItem]:
    rows = read_rows(path)
    require_columns(path, rows, "instruction")
    return [
        EvalItem(
            str(r.get("id") or f"alpaca-{_hid(r['instruction'])}"), r["instruction"].strip(), r.get("dataset")
        )
        for r in rows
    ]


def parse_arenahard(path: Path) -> list[EvalItem]:
    rows = read_rows(path)
    items = []
    for r in rows:
        qid = r.get("question_id") or r.get("uid") or r.get("id")
        text = r.get("prompt")
        if text is None and r.get("turns"):
            text = r["turns"][0].get("content")
        if not qid or not text:
            raise DataFileError(
                f"{path}: each row needs question_id (or uid) and turns[0].content (or prompt)"
            )
        items.append(EvalItem(str(qid), str(text).strip(), r.get("category")))
    return items


def read_baseline_answers(path: Path) -> dict[str, str]:
    """id -> the baseline's answer, from JSONL/JSON/CSV rows with an id and an answer column."""
    rows = read_rows(path)
    require_columns(path, rows)
    out = {}
    for r in rows:
        key = r.get("id") or r.get("question_id") or r.get("uid")
        if key is None and r.get("instruction"):
            key = f"alpaca-{_hid(str(r['instruction']).strip())}"
        answer = r.get("output") or r.get("answer") or r.get("response")
        if key is None or answer is None:
            raise DataFileError(f"{path}: each row needs an id (id/question_id/uid/instruction) and output")
        out[str(key)] = str(answer)
    return out


def baseline_from_items_file(path: Path) -> dict[str, str]:
    """AlpacaEval's file carries a reference answer per instruction in `output`."""
    rows = read_rows(path)
    return {
        f"alpaca-{_hid(r['instruction'].strip())}": str(r["output"])
        for r in rows
        if r.get("instruction") and r.get("output") and not r.get("id")
    }
