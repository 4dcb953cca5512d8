"""`advgame eval` and `advgame redteam` read a typed YAML config with dotted overrides, like `advgame train`:
the example configs validate, file + override runs, a wrong key is refused in one line naming it, and the
flags are shortcuts that win over the file (precedence: defaults < file < key=value < flags)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advgame.cli import main
from advgame.config import ConfigError, load_config
from advgame.eval import cli as eval_cli
from advgame.eval.config import EvalConfig
from advgame.redteam import cli as redteam_cli
from advgame.redteam.config import RedteamConfig

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures" / "eval"
XSTEST = FIX / "xstest_prompts.csv"


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "path, schema",
    [("configs/eval/example.yaml", EvalConfig), ("configs/redteam/example.yaml", RedteamConfig)],
)
def test_example_configs_validate(path, schema):
    cfg = load_config(ROOT / path, schema=schema)
    assert isinstance(cfg, schema)
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        load_config(ROOT / path, ["nope=1"], schema=schema)


def capture(monkeypatch, module) -> list:
    seen: list = []
    monkeypatch.setattr(module, "run_config", lambda cfg: seen.append(cfg) or 0)
    return seen


def test_eval_precedence_defaults_file_overrides_flags(tmp_path, monkeypatch):
    seen = capture(monkeypatch, eval_cli)
    path = tmp_path / "eval.yaml"
    path.write_text(
        f"model: {{path: tiny-llama}}\nbenchmarks: [xstest]\nlimit: 20\nseed: 3\n"
        f"data_files: {{xstest: {XSTEST}}}\n"
    )
    assert (
        main(
            [
                "eval",
                str(path),
                "limit=5",
                "decoding.temperature=0.5",
                "--limit",
                "2",
                "--data-file",
                "harmbench=h.csv",
                "--no-progress",
            ]
        )
        == 0
    )
    cfg = seen[-1]
    assert (cfg.limit, cfg.seed, cfg.decoding.temperature, cfg.resamples, cfg.progress) == (
        2,
        3,
        0.5,
        2000,
        False,
    )
    assert cfg.data_files == {"xstest": str(XSTEST), "harmbench": "h.csv"}  # a flag adds to the file's pairs
    assert main(["eval", str(path), "--limit", "2", "limit=5", "seed=4"]) == 0  # overrides after a flag
    assert (seen[-1].limit, seen[-1].seed) == (2, 4)
    assert main(["eval", "benchmarks=[xstest]", "--model", "m"]) == 0  # overrides without a file
    assert seen[-1].benchmarks == ["xstest"] and seen[-1].model.path == "m"


def test_redteam_precedence_and_judge_model_shortcut(tmp_path, monkeypatch):
    seen = capture(monkeypatch, redteam_cli)
    cfg_file = ROOT / "configs" / "redteam" / "example.yaml"
    assert main(["redteam", str(cfg_file), "behaviors.limit=1", "pair.streams=3", "--pair-streams", "1"]) == 0
    cfg = seen[-1]
    assert (cfg.behaviors.limit, cfg.pair.streams, cfg.attacks, cfg.gcg.steps) == (1, 1, ["pair", "gcg"], 10)
    assert main(["redteam", "--target", "t", "--judge-model", "j"]) == 0
    assert (seen[-1].judge.path, seen[-1].judge.model) == ("j", None)
    assert main(["redteam", "--target", "t", "--judge-url", "http://h/v1", "--judge-model", "j"]) == 0
    assert (seen[-1].judge.path, seen[-1].judge.url, seen[-1].judge.model) == (None, "http://h/v1", "j")


@pytest.mark.parametrize("command, section", [("eval", "model"), ("redteam", "target")])
@pytest.mark.parametrize(
    "override, key",
    [("limitt=3", "limitt"), ("{section}.pth=x", "{section}.pth"), ("decoding.top_k=5", "decoding.top_k")],
)
def test_wrong_keys_are_refused_in_one_line_naming_them(capsys, command, section, override, key):
    override, key = override.format(section=section), key.format(section=section)
    assert main([command, str(ROOT / "configs" / command / "example.yaml"), override]) == 1
    err = one_line(capsys)
    assert err.startswith(f"advgame {command}: config error:") and f"unknown key '{key}'" in err


def test_wrong_values_and_missing_keys_name_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("benchmarks: [xstest]\ndecoding: {temperature: -1}\n")
    assert main(["eval", str(bad)]) == 1
    assert "'decoding.temperature'=-1" in one_line(capsys)
    assert main(["eval", "--model", "m"]) == 1
    assert "missing required key 'benchmarks'" in one_line(capsys)
    assert main(["redteam", str(tmp_path / "none.yaml")]) == 1
    assert "config file not found" in one_line(capsys)


def test_eval_runs_from_a_file_with_an_override(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "eval.yaml"
    out = tmp_path / "out"
    path.write_text(
        f"model: {{path: tiny-llama}}\nbenchmarks: [xstest]\ndata_files: {{xstest: {XSTEST}}}\n"
        f"decoding: {{max_new_tokens: 4, batch_size: 2}}\ndevice: cpu\nprogress: false\n"
        f"resamples: 100\noutput_dir: {out}\n"
    )
    assert main(["eval", str(path), "limit=2"]) == 0
    (result,) = [json.loads(p.read_text()) for p in out.glob("xstest__*.json")]
    assert result["n"] == 2 and result["model"] == "tiny-llama" and result["decoding"]["max_new_tokens"] == 4


def test_redteam_runs_from_a_file_with_an_override(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "redteam.yaml"
    path.write_text(
        "target: {path: 'tiny:llama'}\nattacks: [gcg]\nbehaviors: {source: 'builtin:demo_harmful'}\n"
        "decoding: {max_new_tokens: 4}\ngcg: {steps: 1, search_width: 4, topk: 4, suffix_len: 2}\n"
        f"progress: false\nout: {tmp_path / 'run'}\n"
    )
    assert main(["redteam", str(path), "behaviors.limit=1"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["n_behaviors"] == 1 and [r["attack"] for r in summary["rows"]] == ["gcg"]
