"""`advgame eval`: score a model on safety, over-refusal and utility benchmarks.

    advgame eval configs/eval/example.yaml limit=5 model.path=smollm2
    advgame eval --model smollm2 --benchmarks xstest,harmbench --classifier refusal-string --limit 10 \\
        --data-file xstest=xstest_prompts.csv

The run is an `EvalConfig` (advgame/eval/config.py): a YAML file, dotted key=value overrides, and flags,
each a shortcut for one key (its --help names the key). Later wins: defaults, file, overrides, flags.
Errors (unknown key, benchmark or classifier, unreadable data file, model not found, data offline,
missing extra) print one line and exit non-zero before or instead of any long work; answers already
generated stay cached and a rerun continues from them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from advgame.cli_args import POSITIVE, comma_list
from advgame.config.flags import add_command, given, load_command_config
from advgame.eval.config import EvalConfig

SUMMARY = "score a model on safety, over-refusal and utility benchmarks"
EXIT_USAGE = 1
EXIT_UNAVAILABLE = 3
PAIR_FLAGS = {"data_files": "--data-file", "baseline_answers": "--baseline-answers"}


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

    p, flag = add_command(sub, "eval", SUMMARY, EvalConfig, "configs/eval/example.yaml")
    m = p.add_argument_group("model to score (one of --model or --endpoint)")
    flag(m, "--model", "model.path")
    flag(m, "--base-model", "model.base_model")
    flag(m, "--endpoint", "model.url")
    flag(m, "--endpoint-model", "model.model")
    flag(m, "--api-key-env", "model.api_key_env")
    flag(p, "--benchmarks", "benchmarks", f"comma-separated: {', '.join(BENCHMARKS)}", type=comma_list)
    flag(p, "--classifier", "classifiers", f"comma-separated: {', '.join(CLASSIFIERS)}", type=comma_list)
    flag(p, "--limit", "limit", type=POSITIVE)
    flag(p, "--data-file", "data_files", "(repeatable)", action="append", metavar="NAME=PATH")
    flag(p, "--baseline-answers", "baseline_answers", "(repeatable)", action="append", metavar="NAME=PATH")
    flag(p, "--output-dir", "output_dir")
    d = p.add_argument_group("decoding (recorded in every result)")
    flag(d, "--max-new-tokens", "decoding.max_new_tokens", type=POSITIVE)
    flag(d, "--temperature", "decoding.temperature", type=float)
    flag(d, "--top-p", "decoding.top_p", type=float)
    flag(d, "--batch-size", "decoding.batch_size", type=POSITIVE)
    flag(p, "--seed", "seed", type=int)
    flag(p, "--resamples", "resamples", type=POSITIVE)
    flag(p, "--device", "device")
    j = p.add_argument_group("LLM judge: llm-judge, win-rate benchmarks (--judge-model or --judge-endpoint)")
    flag(j, "--judge-model", "judge.path")
    flag(j, "--judge-endpoint", "judge.url")
    flag(j, "--judge-endpoint-model", "judge.model")
    flag(j, "--judge-api-key-env", "judge.api_key_env")
    flag(j, "--judge-max-new-tokens", "judge.max_new_tokens", type=POSITIVE)
    flag(p, "--guard-path", "guard_path")
    flag(p, "--no-progress", "progress", "no progress bars", action="store_const", const=False)
    p.set_defaults(run=run)


def _flag_values(args: argparse.Namespace) -> dict:
    """The flags given, as dotted keys; NAME=PATH pairs become one key per name (file entries stay)."""
    values = given(args)
    for key, flag in PAIR_FLAGS.items():
        for name, path in _pairs(values.pop(key, None), flag).items():
            values[f"{key}.{name}"] = path
    return values


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"advgame eval: {message}", file=sys.stderr)
    return code


def _judge_backend(cfg: EvalConfig):
    """The judge's backend: an endpoint (named 'openai:<model>') or a local model (named by its spec)."""
    from advgame.targets import endpoint_backend, local_backend

    if cfg.judge.url:
        if not cfg.judge.model:
            raise ValueError("--judge-endpoint needs --judge-endpoint-model (judge.url needs judge.model)")
        return endpoint_backend(cfg.judge)
    if cfg.judge.path:
        return local_backend(
            cfg.judge.path, adapter=cfg.judge.adapter, base_model=cfg.judge.base_model, device=cfg.device
        )[0]
    return None


def run(args: argparse.Namespace) -> int:
    try:
        values = _flag_values(args)
    except ValueError as err:
        return _fail(str(err).splitlines()[0])
    cfg = load_command_config("eval", EvalConfig, args, values)
    return EXIT_USAGE if cfg is None else run_config(cfg)


def run_config(cfg: EvalConfig) -> int:
    from rich.console import Console

    from advgame.eval.benchmarks import BENCHMARKS, ChecksumMismatch, DataUnavailable
    from advgame.eval.benchmarks.files import ROWS_READ, DataFileError
    from advgame.eval.classifiers import CLASSIFIERS, GuardUnavailable
    from advgame.eval.generation import StopAfter
    from advgame.eval.results import rich_disagreement_table, rich_table, slug
    from advgame.eval.runner import EvalSpec, run_eval
    from advgame.extras import MissingExtraError, require
    from advgame.models.gguf import ModelNotFoundError

    benchmarks, names = cfg.benchmarks, cfg.classifiers
    unknown = [b for b in benchmarks if b not in BENCHMARKS]
    if unknown:
        return _fail(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    bad = [c for c in names if c not in CLASSIFIERS]
    if bad:
        return _fail(f"unknown classifier(s) {', '.join(bad)}; known: {', '.join(CLASSIFIERS)}")
    if bool(cfg.model.path) == bool(cfg.model.url):
        return _fail(
            "give exactly one of --model or --endpoint (with --endpoint-model); keys model.path, model.url"
        )
    if cfg.model.url and not cfg.model.model:
        return _fail("--endpoint needs --endpoint-model (model.url needs model.model)")
    display = cfg.model.path or f"endpoint:{cfg.model.model}@{cfg.model.url}"
    out_dir = Path(cfg.output_dir or Path("eval_results") / slug(display))
    from advgame.paths import writable_dir_problem

    if problem := writable_dir_problem(out_dir):
        return _fail(f"--output-dir: {problem}")
    spec = EvalSpec(
        benchmarks,
        out_dir,
        cfg.decoding.sampling(),
        cfg.limit,
        dict(cfg.data_files),
        dict(cfg.baseline_answers),
        cfg.seed,
        cfg.resamples,
        show_progress=cfg.progress,
        lm_eval_max_new_tokens=cfg.decoding.max_new_tokens,
    )
    console = Console(stderr=True)
    try:
        # data first: a missing or offline data file fails before any model loads; one benchmark's missing
        # data is reported and the others still run (all missing: nothing to run)
        failed: dict[str, str] = {}
        for name in benchmarks:
            try:
                _check_data(name, BENCHMARKS, spec.data_files, cfg.limit, console, ROWS_READ, require)
            except (DataUnavailable, DataFileError, ChecksumMismatch, MissingExtraError) as err:
                failed[name] = str(err).splitlines()[0]
        if len(failed) == len(benchmarks):
            for name, why in failed.items():
                _fail(why if len(benchmarks) == 1 or why.startswith(name) else f"{name}: {why}")
            return EXIT_UNAVAILABLE
        spec.benchmarks = [b for b in benchmarks if b not in failed]
        from advgame.targets import load_target

        with console.status(f"loading {display}"):
            target = load_target(cfg.model, device=cfg.device)
        judge_backend = (
            _judge_backend(cfg)
            if ("llm-judge" in names or any(BENCHMARKS[b].kind == "win-rate" for b in benchmarks))
            else None
        )
        classifiers = _classifiers(cfg, judge_backend)
        if classifiers is None:
            return _fail("classifier llm-judge needs --judge-model or --judge-endpoint")

        def judge_factory():
            from advgame.config.schema import JudgeConfig
            from advgame.judges.factory import build_judge

            if judge_backend is None:
                raise ValueError("win-rate benchmarks need --judge-model or --judge-endpoint")
            judge = JudgeConfig(
                kind="model",
                model=judge_backend.name,
                mode="pairwise",
                order_swap=True,
                temperature=0.0,
                max_new_tokens=cfg.judge.max_new_tokens,
            )
            return build_judge(judge, judge_backend, seed=cfg.seed)

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


def _classifiers(cfg: EvalConfig, judge_backend) -> list | None:
    """The classifiers `cfg` names, built; None when llm-judge is asked for without a judge."""
    from advgame.config.schema import SamplingConfig
    from advgame.eval.classifiers import build_classifier

    out = []
    for name in cfg.classifiers:
        if name == "llm-judge":
            if judge_backend is None:
                return None
            sampling = SamplingConfig(
                temperature=0.0, max_new_tokens=cfg.judge.max_new_tokens, batch_size=cfg.decoding.batch_size
            )
            out.append(build_classifier(name, backend=judge_backend, seed=cfg.seed, sampling=sampling))
        elif name == "refusal-string":
            out.append(build_classifier(name))
        else:
            out.append(build_classifier(name, path=cfg.guard_path, device=cfg.device))
    return out


def _check_data(name, benchmarks, data_files, limit, console, rows_read, require) -> None:
    """Load one benchmark's data (or check its extra) and say how many items it has from how many rows."""
    if benchmarks[name].kind == "lm-eval":
        require("lm_eval")
        return
    rows_read.clear()
    items, source = benchmarks[name].load(data_files.get(name), None, data_files)
    read = sum(rows_read.values()) if rows_read else None
    console.print(
        f"{name}: {len(items)} items"
        + (f" from {read} rows read" if read is not None else "")
        + f" ({source['id']})"
        + (f", first {limit} used" if limit else ""),
        markup=False,
        highlight=False,
    )
