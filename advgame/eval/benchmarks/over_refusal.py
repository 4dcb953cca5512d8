"""Over-refusal benchmarks (compliance rate, higher is better): parsers of each file schema.

xstest               XSTest safe prompts (`id,prompt,type,label,focus,note`, label == "safe");
                     per-category = `type` (homonyms, figurative_language, ...)
wildjailbreak-benign WildJailbreak adversarial benign (eval.tsv), or JSONL rows with category "benign"
orbench-hard         OR-Bench hard 1k (`prompt,category`)
"""

from __future__ import annotations

from pathlib import Path

from advgame.eval.benchmarks.base import EvalItem
from advgame.eval.benchmarks.files import read_rows, require_columns
from advgame.eval.benchmarks.safety import _hid, _split_rows


def parse_xstest(path: Path) -> list[EvalItem]:
    rows = read_rows(path)
    require_columns(path, rows, "prompt", "type", "label")
    items = []
    for k, r in enumerate(rows):
        if r["label"] != "safe":
            continue
        item_id = f"xstest-{r.get('id') or k}"
        items.append(EvalItem(item_id, r["prompt"].strip(), r["type"] or None))
    return items


def parse_wildjailbreak_benign(path: Path) -> list[EvalItem]:
    return _split_rows(path, "benign")


def parse_orbench(path: Path) -> list[EvalItem]:
    rows = read_rows(path)
    require_columns(path, rows, "prompt", "category")
    return [
        EvalItem(f"orbench-{_hid(r['prompt'])}", r["prompt"].strip(), r["category"] or None) for r in rows
    ]
