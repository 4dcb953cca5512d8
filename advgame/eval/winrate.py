"""AlpacaEval-style and ArenaHard-style pairwise win rate against a baseline's answers.

The model answers each instruction (cached like any eval). A pairwise LLM judge (advgame.judges, any
backend; order swap on by default so position bias cancels) scores the model's and the baseline's answers
on the 'compliance' rubric: does the response do exactly what was asked, completely, with useful detail.
Per item: 1 when the model scores higher, 0 when lower, 0.5 on a tie, None when the judge failed or no
baseline answer exists (undecided, counted). The classifier field names the judge: "pairwise:<judge>".
"""

from __future__ import annotations

from pathlib import Path

from advgame.atomic import write_json_atomic
from advgame.eval.benchmarks.base import Benchmark
from advgame.eval.benchmarks.files import DataFileError
from advgame.eval.benchmarks.sources import resolve
from advgame.eval.benchmarks.utility import baseline_from_items_file, read_baseline_answers
from advgame.eval.generation import answer_benchmark
from advgame.eval.results import eval_result, result_filename
from advgame.judges.base import PairItem


def evaluate_win_rate(spec, target, benchmark: Benchmark, judge, stop_after: int | None = None) -> dict:
    items, source = benchmark.load(spec.data_files.get(benchmark.name), spec.limit)
    if benchmark.name in spec.baseline_answers:
        baseline = read_baseline_answers(Path(spec.baseline_answers[benchmark.name]))
        baseline_name = Path(spec.baseline_answers[benchmark.name]).name
    else:
        path, _ = resolve(benchmark.name, benchmark.sources, spec.data_files.get(benchmark.name))
        baseline, baseline_name = baseline_from_items_file(path), "reference answers of the items file"
        if not baseline:
            raise DataFileError(
                f"{benchmark.name}: pass --baseline-answers {benchmark.name}=PATH (JSONL with id, output)"
            )
    decoding = spec.sampling.model_dump()
    answers = answer_benchmark(spec, target, benchmark.name, items, decoding, stop_after)
    judged = [i for i in items if not answers[i.id].get("error") and i.id in baseline]
    scores = judge.score_pairs(
        [PairItem("compliance", i.prompt, answers[i.id]["response"], baseline[i.id]) for i in judged]
    )
    by_id = {}
    for item, s in zip(judged, scores, strict=True):
        by_id[item.id] = None if s is None else (1.0 if s[0] > s[1] else 0.0 if s[0] < s[1] else 0.5)
    outcomes = [by_id.get(i.id) for i in items]
    result = eval_result(
        model=target.name,
        benchmark=benchmark,
        classifier=f"pairwise:{judge.name}",
        decoding=decoding,
        source=source,
        outcomes=outcomes,
        categories=[i.category for i in items],
        seed=spec.seed,
        resamples=spec.resamples,
        extra={
            "baseline": baseline_name,
            "n_missing_baseline": sum(1 for i in items if i.id not in baseline),
            "limit": spec.limit,
        },
    )
    write_json_atomic(spec.output_dir / result_filename(result), result)
    return result
