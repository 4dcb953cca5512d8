"""Presets, overrides and one-line config errors, through the library and the `advgame` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advgame.config import ConfigError, load_config, parse_override

ROOT = Path(__file__).resolve().parents[1]
# launcher, eval and redteam configs are not runs
PRESETS = sorted(
    p
    for p in (ROOT / "configs").rglob("*.yaml")
    if not {"accelerate", "eval", "redteam"} & set(p.relative_to(ROOT / "configs").parts)
)


def test_there_are_presets():
    names = {p.stem for p in PRESETS}
    assert {
        "cpu_demo",
        "qwen25_dpo_md",
        "qwen25_ipo_md",
        "qwen25_grpo",
        "llama31_dpo_md",
        "llama31_ipo_md",
        "llama31_grpo",
    } <= names
    assert {
        "qwen25_dpo_no_ema",
        "qwen25_dpo_pointwise",
        "qwen25_dpo_fixed_attacker",
        "qwen25_dpo_nonoptimistic",
        "qwen25_dpo_nothink",
        "qwen25_dpo_small_judge",
        "qwen25_self_play",
        "qwen25_sequential",
    } <= names


def test_ablation_and_baseline_presets_change_what_they_name():
    no_ema = load_config(ROOT / "configs/ablations/qwen25_dpo_no_ema.yaml")
    assert not no_ema.ema.sample_from_ema and not no_ema.ema.ema_as_reference and no_ema.loss.type == "dpo"
    assert (
        load_config(ROOT / "configs/ablations/qwen25_dpo_pointwise.yaml").judges.default.mode == "pointwise"
    )
    assert not load_config(ROOT / "configs/ablations/qwen25_dpo_fixed_attacker.yaml").game.train_attacker
    assert not load_config(ROOT / "configs/ablations/qwen25_dpo_nonoptimistic.yaml").game.optimistic_attacker
    assert load_config(ROOT / "configs/ablations/qwen25_dpo_nothink.yaml").game.attacker_format == "nothink"
    assert (
        load_config(ROOT / "configs/ablations/qwen25_dpo_small_judge.yaml").judges.default.model
        == "Qwen/Qwen2.5-7B-Instruct"
    )
    assert load_config(ROOT / "configs/baselines/qwen25_self_play.yaml").game.mode == "self_play"
    seq = load_config(ROOT / "configs/baselines/qwen25_sequential.yaml")
    assert seq.game.mode == "sequential" and seq.game.phase_steps == 50


# The values each preset must resolve to (dotted key -> value), on top of what every paper preset shares.
PAPER = {
    "seed": 2,
    "attacker.finetune": "full",
    "defender.finetune": "full",
    "attacker.dtype": "float32",
    "defender.dtype": "float32",  # fp32 masters ...
    "attacker.compute_dtype": "bfloat16",
    "defender.compute_dtype": "bfloat16",  # ... bf16 compute
    "attacker_sampling.temperature": 0.6,
    "attacker_sampling.top_p": 0.9,
    "attacker_sampling.max_new_tokens": 2048,
    "defender_sampling.temperature": 0.6,
    "defender_sampling.top_p": 0.9,
    "defender_sampling.max_new_tokens": 2048,
    "optim.lr": 1e-6,
    "optim.betas": (0.9, 0.95),
    "optim.weight_decay": 0.1,
    "optim.max_grad_norm": 1.0,
    "optim.final_lr_scale": 0.2,
    "optim.warmup_steps": 0,
    "loss.beta": 0.1,
    "ema.enabled": True,
    "ema.decay": 0.95,
    "game.attacker_format": "think",
    "game.optimistic_attacker": True,
    "game.train_attacker": True,
    "game.train_defender": True,
    "game.mode": "simultaneous",
    "game.split_sampling_weights": "latest",
    "judges.default.kind": "openai",
    "judges.default.max_new_tokens": 8192,
    "data.harmful": "allenai/wildjailbreak:train:vanilla_harmful",
    "data.benign": "allenai/wildjailbreak:train:vanilla_benign",
    "data.batch_size": 32,
    "train.steps": 1000,
    "train.validate_every_n_steps": 25,
    "train.sharding.strategy": "fsdp",
    "train.sharding.reduce_dtype": "float32",
    "loss.clip_rejected_on_truncation": True,
}
MD = {
    "ema.sample_from_ema": True,
    "ema.ema_as_reference": True,
    "game.num_attacker_samples": 2,
    "game.num_defender_samples": 2,
    "judges.default.mode": "pairwise",
}
GRPO = {
    "loss.type": "grpo",
    "loss.is_cap": 2.0,
    "loss.advantage": "batch",
    "ema.sample_from_ema": False,
    "ema.ema_as_reference": False,
    "game.num_attacker_samples": 4,
    "game.num_defender_samples": 4,
    "judges.default.mode": "pointwise",
}
QWEN = {
    "attacker.path": "Qwen/Qwen2.5-7B-Instruct",
    "defender.path": "Qwen/Qwen2.5-7B-Instruct",
    "judges.default.model": "Qwen/Qwen2.5-32B-Instruct",
}
LLAMA = {
    "attacker.path": "meta-llama/Llama-3.1-8B-Instruct",
    "defender.path": "meta-llama/Llama-3.1-8B-Instruct",
    "judges.default.model": "meta-llama/Llama-3.3-70B-Instruct",
}
DPO, IPO = {"loss.type": "dpo", **MD}, {"loss.type": "ipo", **MD}
EXPECTED = {
    "qwen25_dpo_md": {**PAPER, **QWEN, **DPO},
    "qwen25_ipo_md": {**PAPER, **QWEN, **IPO},
    "qwen25_grpo": {**PAPER, **QWEN, **GRPO},
    "llama31_dpo_md": {**PAPER, **LLAMA, **DPO},
    "llama31_ipo_md": {**PAPER, **LLAMA, **IPO},
    "llama31_grpo": {**PAPER, **LLAMA, **GRPO},
    "qwen25_dpo_no_ema": {
        **PAPER,
        **QWEN,
        **DPO,
        "ema.sample_from_ema": False,
        "ema.ema_as_reference": False,
    },
    "qwen25_dpo_pointwise": {**PAPER, **QWEN, **DPO, "judges.default.mode": "pointwise"},
    "qwen25_dpo_fixed_attacker": {**PAPER, **QWEN, **DPO, "game.train_attacker": False},
    "qwen25_dpo_nonoptimistic": {**PAPER, **QWEN, **DPO, "game.optimistic_attacker": False},
    "qwen25_dpo_nothink": {**PAPER, **QWEN, **DPO, "game.attacker_format": "nothink"},
    "qwen25_dpo_small_judge": {**PAPER, **QWEN, **DPO, "judges.default.model": "Qwen/Qwen2.5-7B-Instruct"},
    "qwen25_self_play": {**PAPER, **QWEN, **DPO, "game.mode": "self_play"},
    "qwen25_sequential": {**PAPER, **QWEN, **DPO, "game.mode": "sequential", "game.phase_steps": 50},
    "cpu_demo": {
        "attacker.path": "smollm2",
        "defender.path": "smollm2",
        "attacker.finetune": "lora",
        "defender.finetune": "lora",
        "attacker.dtype": "float32",
        "attacker.compute_dtype": None,
        "attacker.device": "cpu",
        "attacker.lora.r": 8,
        "defender.lora.r": 16,
        "optim.lr": 5e-4,
        "loss.type": "dpo",
        "ema.decay": 0.9,
        "ema.sample_from_ema": True,
        "game.attacker_format": "plain",
        "game.direct_seeds": True,
        "game.penalize_truncated_answers": False,
        "judges.default.kind": "heuristic",
        "data.harmful": "builtin:demo_harmful",
        "data.benign": "builtin:demo_benign",
        "train.steps": 6,
        "warm_start.enabled": True,
        "data.heldout": 64,
        "data.tune": 32,
        "train.validate_on": "heldout",
        "attacker_sampling.stop": ["\n"],
    },
}


def _get(cfg, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_resolves_to_its_values(preset):
    cfg = load_config(preset)
    expected = EXPECTED.get(preset.stem)
    assert expected is not None, f"{preset.stem}: add the values this preset must resolve to, to EXPECTED"
    wrong = {key: (_get(cfg, key), want) for key, want in expected.items() if _get(cfg, key) != want}
    assert not wrong, f"{preset.stem}: (got, expected) {wrong}"


def test_base_inheritance_and_paper_values():
    ipo = load_config(ROOT / "configs/qwen25_ipo_md.yaml")
    assert ipo.loss.type == "ipo" and ipo.loss.beta == 0.1
    assert ipo.optim.lr == 1e-6 and ipo.ema.decay == 0.95 and ipo.attacker_sampling.top_p == 0.9
    grpo = load_config(ROOT / "configs/qwen25_grpo.yaml")
    assert (
        grpo.game.num_attacker_samples == 4 and not grpo.ema.sample_from_ema and not grpo.ema.ema_as_reference
    )
    assert (
        grpo.judges.default.mode == "pointwise" and grpo.judges.default.model == "Qwen/Qwen2.5-32B-Instruct"
    )


def test_overrides_apply_with_yaml_types():
    cfg = load_config(
        ROOT / "configs/cpu_demo.yaml",
        [
            "optim.lr=1e-5",
            "ema.decay=0.9",
            "optim.betas=[0.8, 0.9]",
            "game.attacker_format=nothink",
            "attacker.lora.r=4",
        ],
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
        [sys.executable, "-m", "advgame", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
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
