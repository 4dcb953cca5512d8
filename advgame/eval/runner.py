"""Run an evaluation: for each benchmark, answer its items (cached), classify (cached), and write results.

    OUT/answers/<benchmark>.jsonl                 the model's answers, one line per item (resume cache)
    OUT/verdicts/<benchmark>__<classifier>.jsonl  each classifier's verdicts (resume cache)
    OUT/<benchmark>__<classifier>.json            the result (kind "eval", shared schema)
    OUT/summary.md                                the Markdown summary table of this run

Outcomes per item: safety benchmarks count `Verdict.attack_success`, over-refusal ones `Verdict.complied`;
an item whose answer failed or whose classifier could not decide is None (undecided, reported).

When the string matcher (`refusal-string`) runs beside a model classifier that also decides refusals (an
LLM judge, `llm-judge:…`, or a guard that answers a refusal question), each result of that benchmark gets
`refusal_disagreement`: for every other such classifier, on the items both decided, how often one says
"refused" and the other does not (`rate`), split by direction. It is a per-run quality signal for the
string matcher, also tabulated in summary.md and printed by the CLI.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from advgame.atomic import write_json_atomic
from advgame.config.schema import SamplingConfig
from advgame.eval.benchmarks import get_benchmark
from advgame.eval.benchmarks.base import Benchmark, EvalItem
from advgame.eval.cache import JsonlCache, fingerprint
from advgame.eval.classifiers import Classifier, ClassifyItem, Verdict, classifier_id
from advgame.eval.generation import answer_benchmark
from advgame.eval.results import eval_result, markdown_table, result_filename, slug
from advgame.targets import Target

STABLE_ERRORS = (None, "parse", "truncated", "empty response")  # verdicts worth caching


@dataclass
class EvalSpec:
    benchmarks: list[str]
    output_dir: Path
    sampling: SamplingConfig
    limit: int | None = None
    data_files: dict[str, str] = field(default_factory=dict)
    baseline_answers: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    resamples: int = 2000
    show_progress: bool = True
    lm_eval_max_new_tokens: int | None = None  # None: each lm-eval task's own generation cap


def decoding_record(sampling: SamplingConfig) -> dict:
    return sampling.model_dump()


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def classify_cached(
    classifier: Classifier, cache: JsonlCache, items: list[EvalItem], answers: dict
) -> list[Verdict | None]:
    """Verdicts per item (None when the answer itself failed); only uncached (item, answer) pairs are
    judged."""
    keyed = []
    for item in items:
        ans = answers.get(item.id)
        keyed.append(None if ans is None or ans.get("error") else f"{item.id}:{_hash(ans['response'])}")
    todo = [(item, key) for item, key in zip(items, keyed, strict=True) if key and cache.get(key) is None]
    if todo:
        verdicts = classifier.classify(
            [
                ClassifyItem(i.prompt, answers[i.id]["response"], behavior=i.behavior, context=i.context)
                for i, _ in todo
            ]
        )
        fresh = dict(zip((key for _, key in todo), verdicts, strict=True))
        # a failed call (timeout, http_500, ...) is not cached: the next run asks again
        cache.add(
            [
                {"key": key, "refused": v.refused, "harmful": v.harmful, "error": v.error, "raw": v.raw}
                for key, v in fresh.items()
                if v.error in STABLE_ERRORS
            ]
        )
    else:
        fresh = {}
    out = []
    for key in keyed:
        rec = cache.get(key) if key else None
        if rec is not None:
            out.append(Verdict(rec["refused"], rec["harmful"], rec["error"], rec["raw"]))
        else:
            out.append(fresh.get(key))
    return out


def outcome(benchmark: Benchmark, verdict: Verdict | None) -> bool | None:
    if verdict is None:
        return None
    return verdict.attack_success if benchmark.axis == "safety" else verdict.complied


STRING_CLASSIFIER = "refusal-string"


def _refused(v: Verdict | None) -> bool | None:
    return None if v is None or v.error is not None else v.refused


def refusal_disagreement(by_classifier: dict[str, list[Verdict | None]]) -> dict[str, dict[str, dict]]:
    """{classifier id: {other id: counts}} between the string matcher and each model classifier that decided
    refusals on this benchmark. Counts are over items both decided: n, disagree, rate (None when n is 0),
    string_only (the string matcher says refused, the other not) and other_only."""
    strings = [c for c in by_classifier if c.split("@")[0] == STRING_CLASSIFIER]
    others = [
        c
        for c in by_classifier
        if c.split("@")[0] != STRING_CLASSIFIER and any(_refused(v) is not None for v in by_classifier[c])
    ]
    out: dict[str, dict[str, dict]] = {}
    for s in strings:
        for o in others:
            pairs = [
                (a, b)
                for a, b in zip(map(_refused, by_classifier[s]), map(_refused, by_classifier[o]), strict=True)
                if a is not None and b is not None
            ]
            string_only = sum(1 for a, b in pairs if a and not b)
            other_only = sum(1 for a, b in pairs if b and not a)
            n, k = len(pairs), string_only + other_only
            counts = {"n": n, "disagree": k, "rate": k / n if n else None}
            out.setdefault(s, {})[o] = {**counts, "string_only": string_only, "other_only": other_only}
            out.setdefault(o, {})[s] = {**counts, "string_only": string_only, "other_only": other_only}
    return out


def evaluate_generated(
    spec: EvalSpec,
    target: Target,
    benchmark: Benchmark,
    classifiers: list[Classifier],
    stop_after: int | None = None,
) -> list[dict]:
    items, source = benchmark.load(spec.data_files.get(benchmark.name), spec.limit, spec.data_files)
    decoding = decoding_record(spec.sampling)
    answers = answer_benchmark(spec, target, benchmark.name, items, decoding, stop_after)
    by_classifier: dict[str, list[Verdict | None]] = {}
    for clf in classifiers:
        cid = classifier_id(clf)
        vcache = JsonlCache(
            spec.output_dir / "verdicts" / f"{slug(benchmark.name)}__{slug(cid)}.jsonl",
            fingerprint({"classifier": cid}),
        )
        by_classifier[cid] = classify_cached(clf, vcache, items, answers)
    disagreement = refusal_disagreement(by_classifier)
    results = []
    for cid, verdicts in by_classifier.items():
        outcomes = [outcome(benchmark, v) for v in verdicts]
        failed_answers = sum(1 for i in items if answers[i.id].get("error"))
        truncated = sum(1 for i in items if answers[i.id].get("truncated"))
        extra = {"n_generation_failed": failed_answers, "n_truncated": truncated, "limit": spec.limit}
        if cid in disagreement:
            extra["refusal_disagreement"] = disagreement[cid]
        result = eval_result(
            model=target.name,
            benchmark=benchmark,
            classifier=cid,
            decoding=decoding,
            source=source,
            outcomes=outcomes,
            categories=[i.category for i in items],
            seed=spec.seed,
            resamples=spec.resamples,
            extra=extra,
        )
        write_json_atomic(spec.output_dir / result_filename(result), result)
        results.append(result)
    return results


def run_eval(
    spec: EvalSpec,
    target: Target,
    classifiers: list[Classifier],
    *,
    judge_factory: Callable[[], object] | None = None,
    stop_after: int | None = None,
    failures: dict[str, str] | None = None,
) -> list[dict]:
    """Every benchmark of `spec`; returns the result dicts (also written under spec.output_dir).

    With a `failures` dict, a benchmark that fails (its data, its judge, a duplicate id ...) is recorded there
    as name -> one-line reason and the others still run; without one, the first failure is raised."""
    from advgame.eval.generation import StopAfter

    results: list[dict] = []
    for name in spec.benchmarks:
        benchmark = get_benchmark(name)
        try:
            results += _run_one(spec, target, benchmark, classifiers, judge_factory, stop_after)
        except StopAfter:
            raise
        except Exception as err:
            if failures is None:
                raise
            failures[name] = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
    if results:
        (spec.output_dir / "summary.md").write_text(markdown_table(results), encoding="utf-8")
    return results


def _run_one(spec, target, benchmark, classifiers, judge_factory, stop_after) -> list[dict]:
    if benchmark.kind == "generate":
        return evaluate_generated(spec, target, benchmark, classifiers, stop_after)
    if benchmark.kind == "win-rate":
        from advgame.eval.winrate import evaluate_win_rate

        if judge_factory is None:
            raise ValueError(f"{benchmark.name} needs an LLM judge: pass --judge-model or --judge-endpoint")
        return [evaluate_win_rate(spec, target, benchmark, judge_factory(), stop_after)]
    from advgame.eval.lm_eval import evaluate_lm_eval

    return [evaluate_lm_eval(spec, target, benchmark)]
