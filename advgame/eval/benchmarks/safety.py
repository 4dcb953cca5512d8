"""Safety benchmarks (attack success rate, lower is better): parsers of each dataset's real file schema.

harmbench      HarmBench text test set, standard + contextual behaviours (context prepended);
               copyright behaviours are left out (they need HarmBench's hashing classifier)
advbench       AdvBench harmful behaviours (upstream CSV `goal,target`, or pyrit's seed YAML)
strongreject   StrongREJECT forbidden prompts (`category,source,forbidden_prompt`)
wildjailbreak  WildJailbreak adversarial harmful (eval.tsv `adversarial,label,data_type`, or JSONL
               `{"prompt","category"}` rows with category "harmful")
wildguardtest  WildGuardTest prompts labelled harmful (`prompt, prompt_harm_label, subcategory, ...`)
dan            DAN / in-the-wild jailbreak templates (a `{{ prompt }}` slot) applied to HarmBench
               standard behaviours; the data file holds the templates (a pyrit-style YAML directory, or
               JSONL/CSV with name, template); the behaviours come from `--data-file harmbench=`
               when given, else HarmBench's canonical source
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from advgame.eval.benchmarks.base import EvalItem
from advgame.eval.benchmarks.files import DataFileError, read_rows, require_columns
from advgame.eval.benchmarks.harmbench import contextual_prompt, read_harmbench
from advgame.eval.benchmarks.sources import resolve


def _hid(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def parse_harmbench(path: Path, functional: tuple[str, ...] = ("standard", "contextual")) -> list[EvalItem]:
    """HarmBench rows (schema and checks in `harmbench.read_harmbench`) as items; a contextual behaviour's
    prompt is its context then the request, and the item keeps both apart in `behavior` and `context`."""
    return [
        EvalItem(
            r.id,
            contextual_prompt(r.context, r.behavior) if r.context else r.behavior,
            r.category or None,
            r.behavior,
            r.context,
        )
        for r in read_harmbench(path, functional)
    ]


def parse_advbench(path: Path) -> list[EvalItem]:
    rows = read_rows(path)
    if path.suffix.lower() in (".yaml", ".yml", ".prompt"):
        doc = rows[0] or {}
        seeds = doc.get("seeds") or doc.get("prompts") if isinstance(doc, dict) else None
        if not seeds:
            raise DataFileError(f"{path}: expected a YAML document with a 'seeds' list")
        out = []
        for s in seeds:
            text = str(s.get("value", "")).strip()
            cats = s.get("harm_categories") or []
            out.append(EvalItem(f"advbench-{_hid(text)}", text, cats[0] if cats else None))
        return out
    require_columns(path, rows, "goal")
    return [EvalItem(f"advbench-{k}", r["goal"].strip()) for k, r in enumerate(rows)]


def parse_strongreject(path: Path) -> list[EvalItem]:
    rows = read_rows(path)
    require_columns(path, rows, "forbidden_prompt", "category")
    return [
        EvalItem(f"strongreject-{k}", r["forbidden_prompt"].strip(), r["category"] or None)
        for k, r in enumerate(rows)
    ]


def _split_rows(path: Path, wanted: str) -> list[EvalItem]:
    """WildJailbreak rows of type `wanted` ('harmful' or 'benign'), adversarial prompts when present."""
    rows = read_rows(path)
    if rows and "data_type" in rows[0]:
        require_columns(path, rows, "adversarial", "data_type")
        picked = [r for r in rows if r["data_type"] == f"adversarial_{wanted}"]
        return [
            EvalItem(f"wjb-{_hid(r['adversarial'])}", r["adversarial"].strip(), f"adversarial_{wanted}")
            for r in picked
        ]
    require_columns(path, rows, "prompt", "category")
    return [
        EvalItem(f"wjb-{_hid(r['prompt'])}", r["prompt"].strip(), r["category"])
        for r in rows
        if r["category"] == wanted
    ]


def parse_wildjailbreak(path: Path) -> list[EvalItem]:
    return _split_rows(path, "harmful")


def parse_wildguardtest(path: Path) -> list[EvalItem]:
    rows = read_rows(path)
    require_columns(path, rows, "prompt", "prompt_harm_label")
    items, seen = [], set()
    for r in rows:
        if r["prompt_harm_label"] != "harmful" or r["prompt"] in seen:
            continue  # the file repeats a prompt once per response; ask each prompt once
        seen.add(r["prompt"])
        adv = str(r.get("adversarial", "")).lower() == "true"
        cat = r.get("subcategory") or ("adversarial" if adv else "vanilla")
        items.append(EvalItem(f"wgt-{_hid(r['prompt'])}", r["prompt"].strip(), cat))
    return items


_SLOT = re.compile(r"\{\{\s*prompt\s*\}\}")


def parse_templates(path: Path) -> list[tuple[str, str]]:
    """(name, template) pairs from pyrit-style YAML (`name`, `value` with a {{ prompt }} slot), a directory
    of them, or JSONL/CSV rows with `name` and `template` columns. Templates without the slot are skipped."""
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")) if path.is_dir() else [path]
    out = []
    for f in files:
        rows = read_rows(f)
        if f.suffix.lower() in (".yaml", ".yml"):
            doc = rows[0] if isinstance(rows[0], dict) else {}
            name, template = str(doc.get("name") or f.stem), str(doc.get("value") or "")
            if _SLOT.search(template):
                out.append((name, template))
            continue
        require_columns(f, rows, "name", "template")
        out += [(str(r["name"]), str(r["template"])) for r in rows if _SLOT.search(str(r["template"]))]
    if not out:
        raise DataFileError(f"{path}: no jailbreak template with a {{{{ prompt }}}} slot")
    return out


def parse_dan(path: Path, harmbench_file: str | None = None) -> list[EvalItem]:
    """Each template applied to each HarmBench standard behaviour, interleaved so that `--limit` keeps a
    spread of templates (item k uses template k mod T and behaviour k div T).

    Item ids are unique by construction: a template whose text repeats an earlier one is dropped, and a name
    already taken by another template gets the template's hash appended."""
    from advgame.eval.benchmarks.registry import HARMBENCH_SOURCES

    templates, texts, names = [], set(), set()
    for name, template in parse_templates(path):
        if template in texts:
            continue  # the same template under another file or name: asking it twice adds nothing
        texts.add(template)
        if name in names:
            name = f"{name}-{_hid(template)[:6]}"
        names.add(name)
        templates.append((name, template))
    behaviors_path, _ = resolve("harmbench", HARMBENCH_SOURCES, harmbench_file)
    behaviors = parse_harmbench(behaviors_path, functional=("standard",))
    items = []
    for b in behaviors:
        for name, template in templates:
            prompt = _SLOT.sub(lambda _m, text=b.behavior: text, template)
            items.append(EvalItem(f"dan-{_hid(name)}-{b.id}", prompt, name, b.behavior))
    return items
