"""Presets, overrides and one-line config errors, through the library and the `advgame` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advgame.config import ConfigError, load_config, parse_override

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "accelerate" not in p.parts)  # launcher configs are not runs


def test_there_are_presets():
    names = {p.stem for p in PRESETS}
    assert {"cpu_demo", "qwen25_dpo_md", "qwen25_ipo_md", "qwen25_grpo", "llama31_dpo_md", "llama31_ipo_md",
            "llama31_grpo"} <= names
    assert {"qwen25_dpo_no_ema", "qwen25_dpo_pointwise", "qwen25_dpo_fixed_attacker", "qwen25_dpo_nonoptimistic",
            "qwen25_dpo_nothink", "qwen25_dpo_small_judge", "qwen25_self_play", "qwen25_sequential"} <= names


def test_ablation_and_baseline_presets_change_what_they_name():
    no_ema = load_config(ROOT / "configs/ablations/qwen25_dpo_no_ema.yaml")
    assert not no_ema.ema.sample_from_ema and not no_ema.ema.ema_as_reference and no_ema.loss.type == "dpo"
    assert load_config(ROOT / "configs/ablations/qwen25_dpo_pointwise.yaml").judges.default.mode == "pointwise"
    assert not load_config(ROOT / "configs/ablations/qwen25_dpo_fixed_attacker.yaml").game.train_attacker
    assert not load_config(ROOT / "configs/ablations/qwen25_dpo_nonoptimistic.yaml").game.optimistic_attacker
    assert load_config(ROOT / "configs/ablations/qwen25_dpo_nothink.yaml").game.attacker_format == "nothink"
    assert load_config(ROOT / "configs/ablations/qwen25_dpo_small_judge.yaml").judges.default.model == "Qwen/Qwen2.5-7B-Instruct"
    assert load_config(ROOT / "configs/baselines/qwen25_self_play.yaml").game.mode == "self_play"
    seq = load_config(ROOT / "configs/baselines/qwen25_sequential.yaml")
    assert seq.game.mode == "sequential" and seq.game.phase_steps == 50


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_validates(preset):
    cfg = load_config(preset)
    assert cfg.name


def test_base_inheritance_and_paper_values():
    ipo = load_config(ROOT / "configs/qwen25_ipo_md.yaml")
    assert ipo.loss.type == "ipo" and ipo.loss.beta == 0.1
    assert ipo.optim.lr == 1e-6 and ipo.ema.decay == 0.95 and ipo.attacker_sampling.top_p == 0.9
    grpo = load_config(ROOT / "configs/qwen25_grpo.yaml")
    assert grpo.game.num_attacker_samples == 4 and not grpo.ema.sample_from_ema and not grpo.ema.ema_as_reference
    assert grpo.judges.default.mode == "pointwise" and grpo.judges.default.model == "Qwen/Qwen2.5-32B-Instruct"


def test_overrides_apply_with_yaml_types():
    cfg = load_config(
        ROOT / "configs/cpu_demo.yaml",
        ["optim.lr=1e-5", "ema.decay=0.9", "optim.betas=[0.8, 0.9]", "game.attacker_format=nothink", "attacker.lora.r=4"],
    )
    assert cfg.optim.lr == 1e-5 and cfg.ema.decay == 0.9 and cfg.optim.betas == (0.8, 0.9)
    assert cfg.game.attacker_format == "nothink" and cfg.attacker.lora.r == 4


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("ema.decay=2", "'ema.decay'=2"),
        ("optim.lrr=1", "unknown key 'optim.lrr'"),
        ("nosuch.section=1", "unknown key 'nosuch'"),
        ("loss.type=ppo", "'loss.type'='ppo'"),
        ("optim.betas=[0.9, 1.5]", "'optim.betas'"),
        ("optim.lr.x=1", "'optim.lr' is a value"),
        ("noequals", "not of the form"),
        ("ema.enabled=false", "need enabled=true"),
    ],
)
def test_bad_values_and_keys_are_named(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs/cpu_demo.yaml", [override])
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_broken_yaml_and_missing_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    partial = tmp_path / "partial.yaml"
    partial.write_text(yaml.safe_dump({"attacker": {"path": "tiny-llama"}}))
    with pytest.raises(ConfigError, match="missing required key 'defender'"):
        load_config(partial)
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(loop)


def test_parse_override_reads_yaml_scalars():
    assert parse_override("a.b=1e-5") == ("a.b", 1e-5)
    assert parse_override("a=null") == ("a", None)
    assert parse_override("a.b=text") == ("a.b", "text")


def _advgame(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "advgame", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["configs/does-not-exist.yaml"], "config file not found: configs/does-not-exist.yaml"),
        (["configs/cpu_demo.yaml", "optim.learning_rate=1e-5"], "unknown key 'optim.learning_rate'"),
        (["configs/cpu_demo.yaml", "ema.decay=2"], "'ema.decay'=2: Input should be less than 1"),
    ],
)
def test_cli_train_config_errors_exit_nonzero_with_one_line(args, fragment):
    result = _advgame("train", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert result.stdout == ""


def test_cli_print_config_resolves_overrides():
    result = _advgame("train", "configs/cpu_demo.yaml", "loss.beta=0.25", "--print-config")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["loss"]["beta"] == 0.25


def test_cli_version_and_help():
    assert _advgame("--version").stdout.startswith("advgame ")
    for command in ["train", "eval", "redteam", "serve", "report"]:
        assert _advgame(command, "--help").returncode == 0
