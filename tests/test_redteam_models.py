"""Loading targets and served models: aliases, run dirs, peft adapter dirs, extra adapters."""

from __future__ import annotations

import json

import pytest
import torch

from advgame.config.schema import LoraConfig
from advgame.models.gguf import ModelNotFoundError
from advgame.models.inference import load_chat_model, resolve_spec
from advgame.models.loading import make_trainable
from advgame.models.tiny import tiny_model


def _save_adapter(path, base_name):
    model, tokenizer = tiny_model("llama", seed=0)
    peft_model = make_trainable(model, "lora", LoraConfig(r=4, alpha=8))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.05)  # a non-zero update, so that merging it changes the weights
    peft_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    cfg = json.loads((path / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = base_name
    (path / "adapter_config.json").write_text(json.dumps(cfg))


def _q_proj(model):
    return model.model.layers[0].self_attn.q_proj.weight


def test_aliases_and_run_dirs(tmp_path):
    assert resolve_spec("tiny:llama") == "tiny-llama"
    (tmp_path / "run" / "final" / "defender").mkdir(parents=True)
    (tmp_path / "run" / "final" / "attacker_ema").mkdir(parents=True)
    assert resolve_spec(str(tmp_path / "run")) == str(tmp_path / "run" / "final" / "defender")
    assert resolve_spec(str(tmp_path / "run"), "attacker_ema") == str(
        tmp_path / "run" / "final" / "attacker_ema"
    )
    assert resolve_spec("smollm2") == "smollm2"


def test_adapter_dir_loads_its_base_and_merges(tmp_path):
    base, _ = load_chat_model("tiny:llama")
    _save_adapter(tmp_path / "run" / "final" / "defender", "tiny-llama")
    model, tokenizer = load_chat_model(str(tmp_path / "run"))  # a run dir -> final/defender -> base + adapter
    assert not torch.allclose(_q_proj(model), _q_proj(base))
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    assert tokenizer.padding_side == "left"
    extra, _ = load_chat_model("tiny:llama", adapter=str(tmp_path / "run" / "final" / "defender"))
    assert torch.allclose(_q_proj(extra), _q_proj(model))


def test_adapter_without_a_recorded_base_fails_clearly(tmp_path):
    _save_adapter(tmp_path / "a", None)
    with pytest.raises(ModelNotFoundError, match="records no base model"):
        load_chat_model(str(tmp_path / "a"))
    with pytest.raises(ModelNotFoundError, match="not a peft adapter"):
        load_chat_model("tiny:llama", adapter=str(tmp_path))
