"""What the trainer asks of a vLLM engine (memory, LoRA rank, sleep mode), checked without vLLM: a stand-in
`vllm` module records the engine arguments. The real engine runs in tests/test_backends_vllm_engine.py."""

from __future__ import annotations

import logging
import sys
import types

import pytest

from advgame.backends import vllm_engine
from advgame.backends.weight_sync import build_engine, vllm_lora_rank
from advgame.config.schema import ModelConfig
from advgame.models.tiny import tiny_model


@pytest.fixture
def fake_vllm(monkeypatch):
    """A `vllm` module whose LLM records its keyword arguments."""
    calls: list[dict] = []

    class LLM:
        def __init__(self, **kwargs):
            calls.append(kwargs)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, __name__="vllm"))
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    return calls


@pytest.fixture
def tok():
    return tiny_model("llama", seed=0)[1]


def _engine(monkeypatch, tok, on_gpu: bool, **kwargs):
    monkeypatch.setattr(vllm_engine.torch.cuda, "is_available", lambda: on_gpu)
    return vllm_engine.VLLMEngineBackend("tiny-llama", tokenizer=tok, **kwargs)


def test_cpu_engine_gets_a_bounded_kv_cache_not_a_share_of_system_memory(fake_vllm, monkeypatch, tok):
    # vLLM-cpu reads gpu_memory_utilization as a share of system memory (0.92 by default): it must not be left
    # to it
    _engine(monkeypatch, tok, on_gpu=False, gpu_memory_utilization=0.35)
    assert fake_vllm[-1]["kv_cache_memory_bytes"] == int(vllm_engine.CPU_DEFAULT_KV_CACHE_GIB * 2**30)
    assert "gpu_memory_utilization" not in fake_vllm[-1]
    _engine(monkeypatch, tok, on_gpu=False, kv_cache_gib=0.5)
    assert fake_vllm[-1]["kv_cache_memory_bytes"] == 2**29
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")  # vLLM's own setting wins over our default
    _engine(monkeypatch, tok, on_gpu=False)
    assert "kv_cache_memory_bytes" not in fake_vllm[-1]


def test_gpu_engine_gets_its_memory_share(fake_vllm, monkeypatch, tok):
    _engine(monkeypatch, tok, on_gpu=True, gpu_memory_utilization=0.3)
    assert fake_vllm[-1]["gpu_memory_utilization"] == 0.3
    assert "kv_cache_memory_bytes" not in fake_vllm[-1]


def test_sleep_mode_on_cpu_warns_once_at_start_and_update_sleeps_are_silent(
    fake_vllm, monkeypatch, tok, caplog
):
    with caplog.at_level(logging.INFO, logger="advgame.backends.vllm_engine"):
        engine = _engine(monkeypatch, tok, on_gpu=False, enable_sleep_mode=True)
        assert [r.levelno for r in caplog.records if "sleep" in r.getMessage()] == [logging.WARNING]
        caplog.clear()
        for _ in range(3):  # the trainer releases the engine before every update
            engine.sleep()
            engine.wake_up()
        assert not engine.asleep and not [r for r in caplog.records if "sleep" in r.getMessage()]
    assert "enable_sleep_mode" not in fake_vllm[-1]


@pytest.mark.parametrize(
    ("r", "configured", "expected"),
    [(4, None, 8), (8, None, 8), (16, None, 16), (16, 64, 64), (33, None, 64), (8, 20, 32)],
)
def test_lora_rank_is_the_smallest_vllm_rank_that_holds_the_adapter(r, configured, expected):
    assert vllm_lora_rank(r, configured) == expected


def test_lora_rank_above_what_vllm_serves_fails_at_start():
    with pytest.raises(ValueError, match="LoRA rank 600"):
        vllm_lora_rank(600)


def test_build_engine_sizes_lora_and_memory_from_the_player_config(monkeypatch, tok):
    built: list[dict] = []
    monkeypatch.setattr(vllm_engine, "VLLMEngineBackend", lambda path, **kw: built.append(kw) or kw)
    cfg = ModelConfig(
        path="tiny-llama",
        finetune="lora",
        lora={"r": 16, "alpha": 32},
        engine={"kind": "vllm", "kv_cache_gib": 2},
    )
    build_engine(cfg, tok, "defender", seed=0)
    assert built[-1]["enable_lora"] and built[-1]["max_lora_rank"] == 16  # not a fixed 64: slower on CPU
    assert built[-1]["kv_cache_gib"] == 2
    build_engine(cfg.model_copy(update={"finetune": "full"}), tok, "attacker", seed=0)
    assert not built[-1]["enable_lora"]
