"""`advgame eval`: score a model on safety, over-refusal and utility benchmarks.

    advgame eval --model smollm2 --benchmarks xstest,harmbench --classifier refusal-string --limit 10 \\
        --data-file xstest=xstest_prompts.csv

Errors (unknown benchmark or classifier, unreadable data file, model not found, data offline, missing
extra) print one line and exit non-zero before or instead of any long work; answers already generated
stay cached and a rerun continues from them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from advgame.cli_args import POSITIVE

SUMMARY = "score a model on safety, over-refusal and utility benchmarks"
EXIT_USAGE = 1
EXIT_UNAVAILABLE = 3


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{flag} expects NAME=PATH, got '{v}'")
        out[name.strip()] = path.strip()
    return out


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `eval` subcommand to the `advgame` parser."""
    from advgame.eval.benchmarks import BENCHMARKS
    from advgame.eval.classifiers import CLASSIFIERS

    p = sub.add_parser("eval", help=SUMMARY, description=SUMMARY[0].upper() + SUMMARY[1:] + ".")
    m = p.add_argument_group("model to score (one of)")
    m.add_argument("--model", help="path, alias (smollm2, tiny-llama), hub id, a training RUN dir, or a peft adapter dir")
    m.add_argument("--base-model", help="base model of a peft adapter dir, when its adapter_config.json names none")
    m.add_argument("--endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    m.add_argument("--endpoint-model", help="model name at --endpoint")
    m.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var holding the endpoint's API key")
    p.add_argument("--benchmarks", required=True, help=f"comma-separated: {', '.join(BENCHMARKS)}")
    p.add_argument("--classifier", default="refusal-string",
                   help=f"comma-separated: {', '.join(CLASSIFIERS)}; refusal-string beside llm-judge also reports "
                        "how often their refusal verdicts disagree")
    p.add_argument("--limit", type=POSITIVE, help="first N items of each benchmark (N >= 1)")
    p.add_argument("--data-file", action="append", metavar="NAME=PATH", help="local file for a benchmark (repeatable)")
    p.add_argument("--baseline-answers", action="append", metavar="NAME=PATH", help="baseline answers for win-rate benchmarks")
    p.add_argument("--output-dir", help="where answers, verdicts and results go (default eval_results/<model>)")
    d = p.add_argument_group("decoding (recorded in every result)")
    d.add_argument("--max-new-tokens", type=POSITIVE, help="generation cap (default 256; lm-eval tasks: the task's own)")
    d.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default; resumes reproduce exactly)")
    d.add_argument("--top-p", type=float, default=1.0)
    d.add_argument("--batch-size", type=POSITIVE, default=8)
    p.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed")
    p.add_argument("--resamples", type=POSITIVE, default=2000, help="bootstrap resamples for the 95%% CI")
    p.add_argument("--device", default="auto")
    j = p.add_argument_group("LLM judge (llm-judge classifier, win-rate benchmarks)")
    j.add_argument("--judge-model", help="in-process judge model (path/alias/hub id)")
    j.add_argument("--judge-endpoint", help="OpenAI-compatible base URL of the judge")
    j.add_argument("--judge-endpoint-model", help="model name at --judge-endpoint")
    j.add_argument("--judge-api-key-env", default="OPENAI_API_KEY")
    j.add_argument("--judge-max-new-tokens", type=POSITIVE, default=512)
    p.add_argument("--guard-path", help="local weights dir for a guard classifier (harmbench-cls, wildguard, llama-guard-3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"advgame eval: {message}", file=sys.stderr)
    return code


def _judge_backend(args):
    if args.judge_endpoint:
        from advgame.backends.openai_compat import OpenAIChatBackend

        if not args.judge_endpoint_model:
            raise ValueError("--judge-endpoint needs --judge-endpoint-model")
        return OpenAIChatBackend([args.judge_endpoint], args.judge_endpoint_model, api_key_env=args.judge_api_key_env)
    if args.judge_model:
        from advgame.eval.target import load_hf_target

        return load_hf_target(args.judge_model, args.device).backend
    return None


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from rich.console import Console

    from advgame.config.schema import SamplingConfig
    from advgame.eval.benchmarks import BENCHMARKS, ChecksumMismatch, DataUnavailable
    from advgame.eval.benchmarks.files import ROWS_READ, DataFileError
    from advgame.eval.classifiers import CLASSIFIERS, GuardUnavailable, build_classifier
    from advgame.eval.generation import StopAfter
    from advgame.eval.results import rich_disagreement_table, rich_table, slug
    from advgame.eval.runner import EvalSpec, run_eval
    from advgame.extras import MissingExtraError, require
    from advgame.models.gguf import ModelNotFoundError

    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    names = [c.strip() for c in args.classifier.split(",") if c.strip()]
    unknown = [b for b in benchmarks if b not in BENCHMARKS]
    if unknown:
        return _fail(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    bad = [c for c in names if c not in CLASSIFIERS]
    if bad:
        return _fail(f"unknown classifier(s) {', '.join(bad)}; known: {', '.join(CLASSIFIERS)}")
    if bool(args.model) == bool(args.endpoint):
        return _fail("give exactly one of --model or --endpoint (with --endpoint-model)")
    if args.endpoint and not args.endpoint_model:
        return _fail("--endpoint needs --endpoint-model")
    try:
        data_files = _pairs(args.data_file, "--data-file")
        baselines = _pairs(args.baseline_answers, "--baseline-answers")
        sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p,
                                  max_new_tokens=256 if args.max_new_tokens is None else args.max_new_tokens,
                                  batch_size=args.batch_size)
    except ValidationError as err:
        e = err.errors()[0]
        return _fail(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}")
    except ValueError as err:
        return _fail(str(err).splitlines()[0])
    display = args.model or f"endpoint:{args.endpoint_model}@{args.endpoint}"
    out_dir = Path(args.output_dir or Path("eval_results") / slug(display))
    from advgame.paths import writable_dir_problem

    if problem := writable_dir_problem(out_dir):
        return _fail(f"--output-dir: {problem}")
    spec = EvalSpec(benchmarks, out_dir, sampling, args.limit, data_files, baselines, args.seed, args.resamples,
                    show_progress=not args.no_progress, lm_eval_max_new_tokens=args.max_new_tokens)
    console = Console(stderr=True)
    try:
        # data first: a missing or offline data file fails before any model loads; one benchmark's missing
        # data is reported and the others still run (all missing: nothing to run)
        failed: dict[str, str] = {}
        for name in benchmarks:
            try:
                _check_data(name, BENCHMARKS, data_files, args.limit, console, ROWS_READ, require)
            except (DataUnavailable, DataFileError, ChecksumMismatch, MissingExtraError) as err:
                failed[name] = str(err).splitlines()[0]
        if len(failed) == len(benchmarks):
            for name, why in failed.items():
                _fail(why if len(benchmarks) == 1 or why.startswith(name) else f"{name}: {why}")
            return EXIT_UNAVAILABLE
        spec.benchmarks = [b for b in benchmarks if b not in failed]
        if args.endpoint:
            from advgame.eval.target import endpoint_target

            target = endpoint_target(args.endpoint, args.endpoint_model, args.api_key_env)
        else:
            from advgame.eval.target import load_hf_target

            with console.status(f"loading {args.model}"):
                target = load_hf_target(args.model, args.device, base_model=args.base_model)
        judge_backend = _judge_backend(args) if ("llm-judge" in names or any(
            BENCHMARKS[b].kind == "win-rate" for b in benchmarks)) else None
        classifiers = []
        for name in names:
            if name == "llm-judge":
                if judge_backend is None:
                    return _fail("classifier llm-judge needs --judge-model or --judge-endpoint")
                classifiers.append(build_classifier(name, backend=judge_backend, seed=args.seed,
                                                    sampling=SamplingConfig(temperature=0.0, max_new_tokens=args.judge_max_new_tokens,
                                                                            batch_size=args.batch_size)))
            elif name == "refusal-string":
                classifiers.append(build_classifier(name))
            else:
                classifiers.append(build_classifier(name, path=args.guard_path, device=args.device))

        def judge_factory():
            from advgame.config.schema import JudgeConfig
            from advgame.judges.factory import build_judge

            if judge_backend is None:
                raise ValueError("win-rate benchmarks need --judge-model or --judge-endpoint")
            cfg = JudgeConfig(kind="model", model=judge_backend.name, mode="pairwise", order_swap=True,
                              temperature=0.0, max_new_tokens=args.judge_max_new_tokens)
            return build_judge(cfg, judge_backend, seed=args.seed)

        results = run_eval(spec, target, classifiers, judge_factory=judge_factory, failures=failed)
    except (DataUnavailable, DataFileError, ChecksumMismatch, ModelNotFoundError, GuardUnavailable) as err:
        return _fail(str(err).splitlines()[0], EXIT_UNAVAILABLE)
    except MissingExtraError as err:
        return _fail(str(err), EXIT_UNAVAILABLE)
    except (ValueError, StopAfter) as err:
        return _fail(str(err).splitlines()[0])
    table_console = Console()
    if not table_console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        table_console = Console(width=180)
    if results:
        table_console.print(rich_table(results))
        disagreement = rich_disagreement_table(results)
        if disagreement is not None:
            table_console.print(disagreement)
        console.print(f"results: {out_dir}/ (summary.md, one JSON per benchmark and classifier)")
    for name, why in failed.items():
        _fail(f"benchmark {name} failed and has no result: {why}")
    if failed:
        return EXIT_UNAVAILABLE if len(failed) == len(benchmarks) or not results else EXIT_USAGE
    return 0


def _check_data(name, benchmarks, data_files, limit, console, rows_read, require) -> None:
    """Load one benchmark's data (or check its extra) and say how many items it has from how many rows."""
    if benchmarks[name].kind == "lm-eval":
        require("lm_eval")
        return
    rows_read.clear()
    items, source = benchmarks[name].load(data_files.get(name), None, data_files)
    read = sum(rows_read.values()) if rows_read else None
    console.print(f"{name}: {len(items)} items" + (f" from {read} rows read" if read is not None else "")
                  + f" ({source['id']})" + (f", first {limit} used" if limit else ""), markup=False, highlight=False)
