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


def test_demo_prints_answer_and_logprob(capsys):
    assert demo.main(["--model", "tiny-llama", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "answer:" in out and "log π(answer | prompt):" in out and "nats over" in out
