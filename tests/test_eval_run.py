"""`advgame eval` end to end: results in the shared schema, resume after a stop or a kill (no item is
answered twice, and the results equal an uninterrupted run), undecided counting, the CLI's errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advgame.cli import main
from advgame.config.schema import SamplingConfig
from advgame.eval.classifiers import build_classifier
from advgame.eval.generation import StopAfter
from advgame.eval.runner import EvalSpec, run_eval
from advgame.targets import Target
from tests.scripted import ScriptedBackend

FIX = Path(__file__).parent / "fixtures" / "eval"
ROOT = Path(__file__).resolve().parents[1]
FILES = {"xstest": str(FIX / "xstest_prompts.csv"), "harmbench": str(FIX / "harmbench_behaviors.csv")}


def reply(prompt: str, k: int) -> str:
    if "kill" in prompt or "lock" in prompt:
        return "I'm sorry, but I can't help with that."
    if "execute" in prompt:
        return ""  # an empty answer: undecided
    return "Sure, here is how: step one, step two."


def spec(out: Path, **kw) -> EvalSpec:
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=32, batch_size=2)
    return EvalSpec(
        ["xstest", "harmbench"], out, sampling, data_files=FILES, resamples=200, show_progress=False, **kw
    )


def strip(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "created"} for r in results]


def test_results_follow_the_schema_and_count_undecided(tmp_path):
    backend = ScriptedBackend(reply)
    results = run_eval(spec(tmp_path), Target(backend, "scripted"), [build_classifier("refusal-string")])
    xs, hb = results
    assert xs["kind"] == "eval" and xs["metric"] == "compliance" and xs["higher_is_better"] is True
    assert (xs["n"], xs["n_decided"], xs["n_undecided"]) == (4, 3, 1)
    assert xs["value"] == pytest.approx(2 / 3) and xs["ci95"][0] <= xs["value"] <= xs["ci95"][1]
    assert xs["by_category"]["figurative_language"] == {"n": 1, "n_undecided": 1, "value": None, "ci95": None}
    assert hb["metric"] == "asr" and hb["higher_is_better"] is False and hb["value"] == pytest.approx(2 / 3)
    assert hb["decoding"]["temperature"] == 0.0 and hb["decoding"]["max_new_tokens"] == 32
    assert hb["classifier"] == "refusal-string@3" and hb["source"]["id"] == "file:harmbench_behaviors.csv"
    on_disk = json.loads((tmp_path / "harmbench__refusal-string_3.json").read_text())
    assert on_disk == hb
    assert "| scripted | xstest |" in (tmp_path / "summary.md").read_text()


def test_resume_after_stop_answers_each_item_once_and_matches(tmp_path):
    full = run_eval(
        spec(tmp_path / "full"),
        Target(ScriptedBackend(reply), "scripted"),
        [build_classifier("refusal-string")],
    )
    backend = ScriptedBackend(reply)
    with pytest.raises(StopAfter):
        run_eval(
            spec(tmp_path / "cut"),
            Target(backend, "scripted"),
            [build_classifier("refusal-string")],
            stop_after=3,
        )
    assert len(backend.prompts) == 3
    resumed = run_eval(
        spec(tmp_path / "cut"), Target(backend, "scripted"), [build_classifier("refusal-string")]
    )
    assert len(backend.prompts) == 7 == len(set(backend.prompts))  # 4 xstest + 3 harmbench, each asked once
    assert strip(resumed) == strip(full)
    # a third run generates nothing at all
    run_eval(spec(tmp_path / "cut"), Target(backend, "scripted"), [build_classifier("refusal-string")])
    assert len(backend.prompts) == 7


def test_changed_decoding_does_not_reuse_answers(tmp_path):
    backend = ScriptedBackend(reply)
    run_eval(spec(tmp_path), Target(backend, "scripted"), [build_classifier("refusal-string")])
    other = spec(tmp_path)
    other.sampling = SamplingConfig(temperature=0.0, max_new_tokens=64, batch_size=2)
    run_eval(other, Target(backend, "scripted"), [build_classifier("refusal-string")])
    assert len(backend.prompts) == 14


def _xstest_file(path: Path, n: int) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "prompt", "type", "label", "focus", "note"])
        for i in range(n):
            w.writerow([i, f"How do I bake bread number {i}?", "homonyms", "safe", "bake", ""])
    return path


def _cli(out: Path, data: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "advgame",
        "eval",
        "--model",
        "tiny-llama",
        "--benchmarks",
        "xstest",
        "--data-file",
        f"xstest={data}",
        "--batch-size",
        "1",
        "--max-new-tokens",
        "8",
        "--device",
        "cpu",
        "--output-dir",
        str(out),
        "--no-progress",
        "--resamples",
        "200",
    ]


def test_cli_resumes_after_kill(tmp_path):
    data = _xstest_file(tmp_path / "x.csv", 30)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    answers = tmp_path / "cut" / "answers" / "xstest.jsonl"
    proc = subprocess.Popen(
        _cli(tmp_path / "cut", data), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if answers.is_file() and len(answers.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(answers.read_text().splitlines())
    assert 2 <= killed_at < 30
    subprocess.run(_cli(tmp_path / "cut", data), env=env, cwd=ROOT, check=True, capture_output=True)
    keys = [json.loads(line)["key"] for line in answers.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 30  # nothing answered twice
    # an uninterrupted run of the same settings, in process
    from advgame.config.source import ModelSource
    from advgame.targets import load_target

    full_spec = EvalSpec(
        ["xstest"],
        tmp_path / "full",
        SamplingConfig(temperature=0.0, top_p=1.0, max_new_tokens=8, batch_size=1),
        data_files={"xstest": str(data)},
        resamples=200,
        show_progress=False,
    )
    target = load_target(ModelSource(path="tiny-llama"), device="cpu")
    (full,) = run_eval(full_spec, target, [build_classifier("refusal-string")])
    cut = json.loads((tmp_path / "cut" / "xstest__refusal-string_3.json").read_text())
    assert {k: v for k, v in cut.items() if k != "created"} == {
        k: v for k, v in full.items() if k != "created"
    }
    full_answers = (tmp_path / "full" / "answers" / "xstest.jsonl").read_text().splitlines()
    by_key = {json.loads(line)["key"]: json.loads(line)["response"] for line in full_answers}
    assert {
        json.loads(line)["key"]: json.loads(line)["response"] for line in answers.read_text().splitlines()
    } == by_key


def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ADVGAME_CACHE", str(tmp_path))
    assert main(["eval", "--model", "tiny-llama", "--benchmarks", "nope"]) == 1
    assert "unknown benchmark(s) nope" in capsys.readouterr().err
    assert main(["eval", "--model", "tiny-llama", "--benchmarks", "xstest"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("advgame eval: offline: pass --data-file xstest=PATH") and err.count("\n") == 1
    assert main(["eval", "--model", "tiny-llama", "--benchmarks", "xstest", "--data-file", "xstest"]) == 1
    assert "NAME=PATH" in capsys.readouterr().err
    assert main(["eval", "--benchmarks", "xstest", "--data-file", f"xstest={FILES['xstest']}"]) == 1
    assert "exactly one of --model or --endpoint" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "--model",
                "./no/such/dir",
                "--benchmarks",
                "xstest",
                "--data-file",
                f"xstest={FILES['xstest']}",
            ]
        )
        == 3
    )
    assert "not found" in capsys.readouterr().err


def test_utility_without_lm_eval_says_how_to_install(monkeypatch, capsys):
    from advgame import extras

    real = extras.importlib.import_module

    def fake(name, *a, **k):
        if name.split(".")[0] == "lm_eval":
            raise ImportError("No module named 'lm_eval'")
        return real(name, *a, **k)

    monkeypatch.setattr(extras.importlib, "import_module", fake)
    assert main(["eval", "--model", "tiny-llama", "--benchmarks", "ifeval", "--limit", "20"]) == 3
    assert "pip install 'advgame[eval]'" in capsys.readouterr().err


def test_target_loads_a_run_dirs_final_defender_adapter(tmp_path):
    from advgame.config.schema import ModelConfig
    from advgame.config.source import ModelSource
    from advgame.models.gguf import ModelNotFoundError
    from advgame.models.loading import load_model
    from advgame.targets import load_target

    model, tok = load_model(ModelConfig(path="tiny-llama", finetune="lora", device="cpu"))
    adapter = tmp_path / "run" / "final" / "defender"
    model.save_pretrained(adapter)
    tok.save_pretrained(adapter)
    with pytest.raises(ModelNotFoundError, match="records no base model"):
        load_target(ModelSource(path=str(tmp_path / "run")), device="cpu")
    target = load_target(ModelSource(path=str(tmp_path / "run"), base_model="tiny-llama"), device="cpu")
    names = [n for n, _ in target.backend.model.named_parameters()]
    assert type(target.backend.model).__name__ == "LlamaForCausalLM" and not any(
        "lora_" in n for n in names
    )  # merged
    assert not any(p.requires_grad for p in target.backend.model.parameters())
    (out,) = target.backend.generate(["hello"], SamplingConfig(temperature=0.0, max_new_tokens=4))
    assert out.error is None and len(out.token_ids) <= 4


def test_win_rate_against_baseline_answers(tmp_path):
    from tests.scripted import ScriptedJudge

    s = EvalSpec(
        ["arenahard"],
        tmp_path,
        SamplingConfig(temperature=0.0, max_new_tokens=8, batch_size=2),
        data_files={"arenahard": str(FIX / "arena_hard_questions.jsonl")},
        baseline_answers={"arenahard": str(FIX / "arena_hard_baseline.jsonl")},
        resamples=100,
        show_progress=False,
    )
    backend = ScriptedBackend(
        lambda p, k: "a long and careful answer, with tests and docs" if "reverse" in p else "x"
    )
    judge = ScriptedJudge(score=lambda rubric, q, r: None if r == "391" else float(len(r)))
    (result,) = run_eval(s, Target(backend, "scripted"), [], judge_factory=lambda: judge)
    assert result["metric"] == "win_rate" and result["classifier"] == "pairwise:scripted"
    assert (result["n"], result["n_decided"], result["n_undecided"]) == (2, 1, 1)  # q2: the judge failed
    assert result["value"] == 1.0 and judge.seen_pairs[0].rubric == "compliance"


def test_cli_llm_judge_on_a_tiny_model_counts_undecided(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    code = main(
        [
            "eval",
            "--model",
            "tiny-llama",
            "--benchmarks",
            "xstest",
            "--data-file",
            f"xstest={FILES['xstest']}",
            "--classifier",
            "refusal-string,llm-judge",
            "--judge-model",
            "tiny-llama",
            "--device",
            "cpu",
            "--max-new-tokens",
            "4",
            "--judge-max-new-tokens",
            "8",
            "--output-dir",
            str(out),
            "--no-progress",
            "--resamples",
            "100",
        ]
    )
    assert code == 0
    judged = json.loads((out / "xstest__llm-judge_tiny-llama_1.json").read_text())
    assert judged["classifier"] == "llm-judge:tiny-llama@1"
    assert judged["n"] == 4 and judged["n_undecided"] + judged["n_decided"] == 4
    assert judged["n_undecided"] >= 1 and judged["value"] is None or judged["n_decided"] > 0  # random judge
    verdicts = (out / "verdicts" / "xstest__llm-judge_tiny-llama_1.jsonl").read_text().splitlines()
    assert all(json.loads(v)["error"] in (None, "parse", "truncated", "empty response") for v in verdicts)
    assert "llm-judge:tiny-llama@1" in capsys.readouterr().out


def test_failed_classifier_calls_are_retried_on_rerun(tmp_path):
    from advgame.eval.classifiers import Verdict

    class Flaky:
        name, version = "flaky", "1"

        def __init__(self):
            self.seen = []

        def classify(self, items):
            self.seen.append(len(items))
            first = len(self.seen) == 1
            return [Verdict(None, error="timeout") if first else Verdict(refused=False) for _ in items]

    s = spec(tmp_path)
    s.benchmarks = ["xstest"]
    clf, backend = Flaky(), ScriptedBackend(lambda p, k: "Sure.")
    (first,) = run_eval(s, Target(backend, "scripted"), [clf])
    assert first["n_undecided"] == 4 and first["value"] is None
    (second,) = run_eval(s, Target(backend, "scripted"), [clf])
    assert clf.seen == [4, 4] and second["n_undecided"] == 0 and second["value"] == 1.0
    run_eval(s, Target(backend, "scripted"), [clf])
    assert clf.seen == [4, 4]  # decided verdicts are cached


# lm-eval indexes its task registry (tens of seconds); runs only where the extra is installed
@pytest.mark.slow
def test_ifeval_through_lm_eval_on_a_local_file(tmp_path, monkeypatch):
    pytest.importorskip("lm_eval", reason="the `eval` extra (lm-eval) is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = tmp_path / "out"
    common = [
        "eval",
        "--model",
        "tiny-llama",
        "--benchmarks",
        "ifeval",
        "--limit",
        "20",
        "--device",
        "cpu",
        "--max-new-tokens",
        "16",
        "--output-dir",
        str(out),
        "--no-progress",
    ]
    assert main(common) == 3  # the hub is unreachable: asks for a data file
    assert main([*common, "--data-file", f"ifeval={FIX / 'ifeval_sample.jsonl'}"]) == 0
    (path,) = out.glob("ifeval__*.json")
    result = json.loads(path.read_text())
    assert result["classifier"].startswith("lm-eval:ifeval@") and result["n"] == 4
    assert 0.0 <= result["value"] <= 1.0 and result["decoding"]["max_gen_toks"] == 16
