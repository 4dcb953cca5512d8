"""Optional-dependency messages and the demo entry point (on a tiny model)."""

from __future__ import annotations

import importlib

import pytest

from advgame import demo, extras
from advgame.extras import MissingExtraError, require


def test_missing_extra_names_the_install_command(monkeypatch):
    def absent(name):
        raise ImportError(f"No module named '{name}'")

    monkeypatch.setattr(extras.importlib, "import_module", absent)
    with pytest.raises(MissingExtraError, match=r"pip install 'advgame\[vllm\]'"):
        require("vllm")
    with pytest.raises(MissingExtraError, match=r"advgame\[track\]"):
        require("wandb.sdk")


def test_present_module_is_returned():
    assert require("json") is importlib.import_module("json")


def test_demo_trains_and_prints_the_before_after_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")  # one table row per line
    overrides = [
        "attacker.path=tiny-llama",
        "defender.path=tiny-llama",
        f"output_dir={tmp_path}",
        "train.steps=1",
        "attacker_sampling.max_new_tokens=4",
        "defender_sampling.max_new_tokens=4",
        "train.validation_size=3",
        "logging.progress=false",
    ]
    assert demo.main(overrides) == 0
    out = capsys.readouterr().out
    for row in ("harmful refusal-or-deflection rate", "benign compliance rate", "balanced score", "fluency"):
        line = next(line for line in out.splitlines() if row in line)
        assert line.count("[") == 2, line  # a 95% interval before and after
    assert "warm start" in out and "n = 3 harmful + 3 benign" in out
    assert "refusals decided by refusal-string@3" in out
    # the same matcher as advgame eval and redteam (issue 17)
