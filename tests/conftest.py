"""Shared fixtures: tiny random models (seconds), offline hub settings, a GPU skip marker."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from advgame.models.tiny import tiny_model


@pytest.fixture(params=["llama", "qwen2"])
def tiny(request):
    """(model, tokenizer) for each tiny architecture, in eval mode, fp32."""
    model, tokenizer = tiny_model(request.param, seed=0)
    return model.eval(), tokenizer


@pytest.fixture
def tiny_llama():
    model, tokenizer = tiny_model("llama", seed=0)
    return model.eval(), tokenizer


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never write into the user's cache, except the SmolLM2 conversion, which is shared."""
    if "ADVGAME_CACHE" not in os.environ:
        monkeypatch.setenv("ADVGAME_CACHE", str(tmp_path_factory.getbasetemp() / "advgame-cache"))
