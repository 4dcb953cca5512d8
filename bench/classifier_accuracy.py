"""Accuracy of the refusal matchers against hand labels: refusal-string@3 next to the versions it replaced.

    # all parts, table + bench/results/classifier_accuracy.json
    python bench/classifier_accuracy.py
    # while developing: tune part, list its errors
    python bench/classifier_accuracy.py --parts tune --errors tune

Parts (each a JSONL of {"prompt", "completion", "label"} rows, label full_compliance / full_refusal /
partial_refusal; a refusal is a full or partial refusal):

    tune       bench/data/refusal_dev/tune.jsonl     the part the rules were developed on
    held-out   bench/data/refusal_dev/heldout.jsonl  measured only (see bench/data/refusal_dev/README.md)
    fixture    tests/fixtures/eval/refusal_completions.jsonl   the older 54-row set the tests pin

Classifiers: `v3` = refusal-string@3 (`advgame.judges.refusal`, given the request as `advgame eval` gives
it), `v2` = refusal-string@2, `v1` = advgame-heuristic-refusal-v1 (what training validation and the demo
used), `prefix-20` = a 20-entry substring list in the style of the 2023 jailbreak literature
(`bench/legacy_refusal.py`). Per part and classifier: agreement (binary, refused vs not), refusal recall,
refusal precision, each with a 95% Wilson interval for agreement, and a confusion matrix with the three gold
classes as rows: v3 predicts three ways (compliance / full / partial), the old ones refused or not.
The targets of issue 17 (held-out agreement >= 0.93, recall >= 0.90, precision >= 0.93) are checked and
printed; `--check` exits 1 when the held-out part misses one.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from legacy_refusal import is_refusal_gcg, is_refusal_v1, is_refusal_v2

from advgame.judges.refusal import CLASSIFIER_ID, analyse

PARTS = {
    "tune": ROOT / "bench/data/refusal_dev/tune.jsonl",
    "held-out": ROOT / "bench/data/refusal_dev/heldout.jsonl",
    "fixture": ROOT / "tests/fixtures/eval/refusal_completions.jsonl",
}
LABELS = ("full_compliance", "full_refusal", "partial_refusal")
TARGETS = {"agreement": 0.93, "recall": 0.90, "precision": 0.93}


def _v3(row: dict) -> str:
    return analyse(row["completion"], row["prompt"]).label


CLASSIFIERS = {
    "v3": (CLASSIFIER_ID, _v3),
    "v2": ("refusal-string@2", lambda r: is_refusal_v2(r["completion"])),
    "v1": ("advgame-heuristic-refusal-v1", lambda r: is_refusal_v1(r["completion"])),
    "prefix-20": ("20-entry prefix list", lambda r: is_refusal_gcg(r["completion"])),
}


def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    if n == 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 4), round(centre + half, 4)]


def score(rows: list[dict], predict) -> dict:
    """Binary figures plus the confusion matrix (gold label -> predicted label or 'refused'/'not refused')."""
    tp = fp = fn = tn = 0
    confusion: dict[str, Counter] = {label: Counter() for label in LABELS}
    errors = []
    for r in rows:
        pred = predict(r)
        refused = pred != "full_compliance" if isinstance(pred, str) else bool(pred)
        cell = pred if isinstance(pred, str) else ("refused" if refused else "not refused")
        confusion[r["label"]][cell] += 1
        gold = r["label"] != "full_compliance"
        tp, fp, fn, tn = (
            tp + (gold and refused),
            fp + (not gold and refused),
            fn + (gold and not refused),
            tn + (not gold and not refused),
        )
        if gold != refused:
            errors.append(r)
    n = len(rows)
    return {
        "n": n,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "agreement": (tp + tn) / n if n else None,
        "agreement_ci95": wilson(tp + tn, n),
        "recall": tp / (tp + fn) if tp + fn else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "confusion": {label: dict(c) for label, c in confusion.items()},
        "_errors": errors,
    }


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of: {', '.join(PARTS)}")
    parser.add_argument(
        "--data", action="append", default=[], metavar="NAME=PATH", help="an extra labelled part"
    )
    parser.add_argument("--errors", default="", help="comma-separated parts whose v3 errors to list")
    parser.add_argument("--check", action="store_true", help="exit 1 when held-out misses a target")
    parser.add_argument("--out", default=str(ROOT / "bench/results/classifier_accuracy.json"))
    args = parser.parse_args()
    parts = {p: PARTS[p] for p in args.parts.split(",") if p}
    for extra in args.data:
        name, _, path = extra.partition("=")
        parts[name] = Path(path)
    console = Console(width=max(Console().width, 150))
    results: dict[str, dict] = {}
    for part, path in parts.items():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        results[part] = {
            "file": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
            "labels": dict(Counter(r["label"] for r in rows)),
            "classifiers": {k: {"name": name, **score(rows, fn)} for k, (name, fn) in CLASSIFIERS.items()},
        }

    table = Table(title="refusal matchers vs hand labels (binary: refused = full or partial refusal)")
    for col in ("part", "n", "classifier", "agreement", "95% CI", "recall", "precision", "FN", "FP"):
        table.add_column(col, justify="left" if col in ("part", "classifier") else "right")
    for part, res in results.items():
        for k, r in res["classifiers"].items():
            ci = r["agreement_ci95"]
            table.add_row(
                part,
                str(r["n"]),
                r["name"],
                _f(r["agreement"]),
                f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-",
                _f(r["recall"]),
                _f(r["precision"]),
                str(r["fn"]),
                str(r["fp"]),
            )
        table.add_section()
    console.print(table)

    for part, res in results.items():
        conf = Table(title=f"{part}: confusion (rows: gold label; columns: prediction)")
        conf.add_column("gold")
        for k in CLASSIFIERS:
            cols = (
                ("full_compliance", "full_refusal", "partial_refusal")
                if k == "v3"
                else ("not refused", "refused")
            )
            for c in cols:
                conf.add_column(f"{k}: {c.replace('full_', '').replace('_refusal', '')}", justify="right")
        for label in LABELS:
            cells = []
            for k in CLASSIFIERS:
                cols = (
                    ("full_compliance", "full_refusal", "partial_refusal")
                    if k == "v3"
                    else ("not refused", "refused")
                )
                cells += [str(res["classifiers"][k]["confusion"][label].get(c, 0)) for c in cols]
            conf.add_row(f"{label} ({res['labels'].get(label, 0)})", *cells)
        console.print(conf)

    for part in [p for p in args.errors.split(",") if p]:
        console.print(f"[bold]{part}: v3 errors[/bold]")
        for r in results[part]["classifiers"]["v3"]["_errors"]:
            m = analyse(r["completion"], r["prompt"])
            console.print(
                f"- gold {r['label']}, rule {m.rule} {m.cue!r}: {r['prompt'][:60]!r} "
                f"-> {r['completion'][:160]!r}",
                markup=False,
            )

    verdict = {}
    if "held-out" in results:
        v3 = results["held-out"]["classifiers"]["v3"]
        verdict = {
            k: {"target": t, "value": v3[k], "met": v3[k] is not None and v3[k] >= t}
            for k, t in TARGETS.items()
        }
        line = ", ".join(
            f"{k} {_f(v['value'])} (>= {v['target']}: {'yes' if v['met'] else 'NO'})"
            for k, v in verdict.items()
        )
        console.print(f"held-out targets for {CLASSIFIER_ID}: {line}", markup=False)

    for res in results.values():
        for r in res["classifiers"].values():
            r.pop("_errors")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "classifier": CLASSIFIER_ID,
                "command": "python bench/classifier_accuracy.py",
                "parts": results,
                "held_out_targets": verdict,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 1 if args.check and verdict and not all(v["met"] for v in verdict.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
