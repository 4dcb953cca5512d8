"""Utility benchmarks through lm-eval-harness (the optional extra `eval`: pip install 'advgame[eval]').

The model is handed to lm-eval in-process (its HFLM wrapper around our loaded model and tokenizer) or, for
an endpoint, as lm-eval's `local-chat-completions` model. The task's data comes from the hub through
lm-eval; `--data-file ifeval=PATH` instead runs the same task on a local file in the task's schema (a
task YAML that includes lm-eval's own and points `dataset_path` at the file). Without the extra, or
offline without a data file, it fails with one line saying what to do.

The classifier field is "lm-eval:<task>@<lm-eval version>"; the value is the task's main metric with
lm-eval's standard error turned into a normal 95% interval (lm-eval reports a stderr, not a bootstrap).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from advgame import __version__
from advgame.atomic import write_json_atomic
from advgame.eval.benchmarks.base import Benchmark
from advgame.eval.benchmarks.sources import DataUnavailable, sha256_file
from advgame.eval.results import result_filename
from advgame.extras import require


def _local_task(task: str, data_file: Path, tmp: Path, lm_eval_dir: Path) -> str:
    """Write a task YAML that reuses lm-eval's `task` on a local JSON/JSONL file; returns its name."""
    matches = sorted(lm_eval_dir.glob(f"tasks/**/{task}.yaml"))
    if not matches:
        raise DataUnavailable(f"lm-eval has no task file {task}.yaml to run on --data-file")
    name = f"{task}_advgame_local"
    fmt = "csv" if data_file.suffix == ".csv" else "json"
    (tmp / f"{name}.yaml").write_text(
        f"include: {matches[0]}\ntask: {name}\ndataset_path: {fmt}\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    train: {data_file.resolve()}\ntest_split: train\n"
        "validation_split: null\ntraining_split: null\nfewshot_split: null\n",
        encoding="utf-8",
    )
    return name


def _lm(target, batch_size: int, max_new_tokens: int):
    from advgame.backends.hf import HFBackend

    if isinstance(target.backend, HFBackend):
        from lm_eval.models.huggingface import HFLM

        return HFLM(
            pretrained=target.backend.model,
            tokenizer=target.backend.tokenizer,
            batch_size=batch_size,
            max_length=None,
            max_gen_toks=max_new_tokens,
        )
    from lm_eval.api.registry import get_model

    backend = target.backend
    return get_model("local-chat-completions").create_from_arg_string(
        f"model={backend.model},base_url={backend.base_urls[0]}/chat/completions,num_concurrent={backend.max_concurrency}"
    )


def evaluate_lm_eval(spec, target, benchmark: Benchmark) -> dict:
    lm_eval = require("lm_eval")
    from lm_eval.tasks import TaskManager

    task = benchmark.options["task"]
    data_file = spec.data_files.get(benchmark.name)
    cap = spec.lm_eval_max_new_tokens
    gen_kwargs = f"max_gen_toks={cap}" if cap else None
    with tempfile.TemporaryDirectory() as tmp:
        if data_file:
            task_name = _local_task(task, Path(data_file), Path(tmp), Path(lm_eval.__file__).parent)
            manager = TaskManager(include_path=tmp)
            source = {
                "id": f"file:{Path(data_file).name}",
                "revision": None,
                "sha256": sha256_file(Path(data_file)),
            }
        else:
            task_name, manager = task, TaskManager()
            source = {"id": f"lm-eval:{task}", "revision": None, "sha256": None}
        try:
            out = lm_eval.simple_evaluate(
                model=_lm(target, spec.sampling.batch_size, spec.sampling.max_new_tokens),
                tasks=[task_name],
                task_manager=manager,
                limit=spec.limit,
                random_seed=spec.seed,
                numpy_random_seed=spec.seed,
                torch_random_seed=spec.seed,
                apply_chat_template=True,
                gen_kwargs=gen_kwargs,
            )
        except (ConnectionError, OSError, ValueError) as err:
            if data_file:
                raise
            first = (str(err).splitlines() or [type(err).__name__])[0][:160]
            raise DataUnavailable(
                f"offline: pass --data-file {benchmark.name}=PATH (lm-eval could not fetch '{task}': {first})"
            ) from err
    metrics = out["results"][task_name]
    metric = benchmark.options["metric"]
    value = next(v for k, v in metrics.items() if k.split(",")[0] == metric)
    stderr = next((v for k, v in metrics.items() if k.split(",")[0] == f"{metric}_stderr"), None)
    n = int(out.get("n-samples", {}).get(task_name, {}).get("effective", 0)) or None
    ci = None
    if isinstance(stderr, (int, float)):
        ci = [max(0.0, value - 1.96 * stderr), min(1.0, value + 1.96 * stderr)]
    result = {
        "kind": "eval",
        "advgame_version": __version__,
        "model": target.name,
        "benchmark": benchmark.name,
        "axis": benchmark.axis,
        "metric": benchmark.metric,
        "higher_is_better": True,
        "classifier": f"lm-eval:{task}@{getattr(lm_eval, '__version__', '?')}",
        "decoding": {"lm_eval": "task default", "max_gen_toks": cap},
        "source": source,
        "n": n,
        "n_decided": n,
        "n_undecided": 0,
        "value": float(value),
        "ci95": ci,
        "by_category": {},
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lm_eval_metric": metric,
        "limit": spec.limit,
    }
    write_json_atomic(spec.output_dir / result_filename(result), result)
    return result
