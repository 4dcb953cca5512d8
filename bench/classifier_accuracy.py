"""Accuracy of the refusal-string classifier on hand-written XSTest-style completions.

    python bench/classifier_accuracy.py [--data tests/fixtures/eval/refusal_completions.jsonl]

Each row is (prompt, completion, label) with label full_compliance / full_refusal / partial_refusal; a
refusal is a full or partial refusal. Prints a table (per label and overall, version 1 = the heuristic
judge's phrase list, version 2 = the current classifier) and writes bench/results/classifier_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from advgame.eval.classifiers.refusal_string import is_refusal_v2
from advgame.judges.heuristic import is_refusal

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "tests/fixtures/eval/refusal_completions.jsonl"))
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    results = {}
    for version, fn in (("1", is_refusal), ("2", is_refusal_v2)):
        total, right = Counter(), Counter()
        for r in rows:
            gold = r["label"] != "full_compliance"
            total[r["label"]] += 1
            right[r["label"]] += fn(r["completion"]) == gold
        results[version] = {
            "n": len(rows), "correct": sum(right.values()), "accuracy": sum(right.values()) / len(rows),
            "by_label": {k: {"n": total[k], "correct": right[k]} for k in sorted(total)},
        }
    table = Table(title=f"refusal-string accuracy on {len(rows)} hand-written completions")
    table.add_column("version")
    for label in sorted(results["1"]["by_label"]):
        table.add_column(label)
    table.add_column("overall")
    for version, res in results.items():
        cells = [f"{v['correct']}/{v['n']}" for _, v in sorted(res["by_label"].items())]
        table.add_row(version, *cells, f"{res['correct']}/{res['n']} = {res['accuracy']:.1%}")
    Console().print(table)
    out = ROOT / "bench/results/classifier_accuracy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": Path(args.data).name, "versions": results}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
