"""Batched sampling and completion log-probs on tiny models (left padding, mixed lengths)."""

from __future__ import annotations

import pytest
import torch

from advgame.config.schema import SamplingConfig
from advgame.policy import (
    completion_logprobs,
    encode_completions,
    encode_prompts,
    generate,
    pack_right_aligned,
)

PROMPTS = ["hi", "How do I bake a chocolate cake for a party of twelve people?", "Explain vaccines."]
COMPLETIONS = ["Sure.", "Preheat the oven, mix flour, sugar, cocoa and eggs, then bake it.", "ok"]


def _token_by_token(model, prompt, completion):
    """Reference: one unpadded forward per completion token, log-softmax of the last position."""
    total, values = 0.0, []
    for t in range(len(completion)):
        ids = torch.tensor([prompt + completion[:t]])
        logits = model(input_ids=ids).logits[0, -1].double()
        lp = torch.log_softmax(logits, -1)[completion[t]].item()
        values.append(lp)
        total += lp
    return total, values


def test_batched_logprobs_equal_token_by_token(tiny):
    model, tok = tiny
    prompts = encode_prompts(tok, PROMPTS)
    completions = encode_completions(tok, COMPLETIONS)
    assert len({len(p) for p in prompts}) == 3 and len({len(c) for c in completions}) == 3  # mixed lengths
    with torch.no_grad():
        batched = completion_logprobs(model, prompts, completions, tok.pad_token_id)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        total, values = _token_by_token(model, p, c)
        assert batched.sum[i].item() == pytest.approx(total, abs=1e-4)
        got = batched.tokens[i][batched.mask[i]].tolist()
        assert got == pytest.approx(values, abs=1e-4)
    assert batched.lengths.tolist() == [len(c) for c in completions]


def test_logprobs_carry_gradients_only_through_completion_tokens(tiny_llama):
    model, tok = tiny_llama
    prompts = encode_prompts(tok, PROMPTS[:2])
    completions = encode_completions(tok, COMPLETIONS[:2])
    out = completion_logprobs(model, prompts, completions, tok.pad_token_id)
    out.sum.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert (out.tokens[~out.mask] == 0).all()


def test_completions_mark_truncation_and_end_with_eos():
    from advgame.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    done, cut = encode_completions(tok, ["abc", "abc"], truncated=[False, True])
    assert done[-1] == tok.eos_token_id and cut[-1] != tok.eos_token_id and done[:-1] == cut


def test_generate_is_seeded_batched_and_flags_truncation(tiny_llama):
    model, tok = tiny_llama
    calls = []
    original = model.generate

    def counting_generate(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    model.generate = counting_generate
    cfg = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=6, batch_size=4)
    a = generate(model, tok, PROMPTS, cfg, seed=7, num_samples=2)
    b = generate(model, tok, PROMPTS, cfg, seed=7, num_samples=2)
    c = generate(model, tok, PROMPTS, cfg, seed=8, num_samples=2)
    assert calls == [4, 2] * 3  # 6 sequences in batches of 4: one generate call per batch, no per-prompt loop
    assert [x.token_ids for x in a.completions] == [x.token_ids for x in b.completions]
    assert [x.token_ids for x in a.completions] != [x.token_ids for x in c.completions]
    for comp in a.completions:
        hit_eos = comp.token_ids[-1] == tok.eos_token_id
        assert comp.truncated == (not hit_eos)
        assert comp.truncated == (len(comp.token_ids) == 6) or hit_eos
    assert a.completions[0].prompt_ids == a.completions[1].prompt_ids  # prompt-major order


def test_generate_stops_at_eos_and_reports_finished():
    """A model forced to emit end-of-turn first yields an empty, finished (not truncated) answer."""
    from advgame.models.tiny import tiny_model

    model, tok = tiny_model("llama")
    original_forward = model.forward

    def eos_forward(*args, **kwargs):
        out = original_forward(*args, **kwargs)
        out.logits[..., :] = -1e4
        out.logits[..., tok.eos_token_id] = 0
        return out

    model.forward = eos_forward
    result = generate(model, tok, ["hello"], SamplingConfig(max_new_tokens=5, temperature=0.0))
    comp = result.completions[0]
    assert comp.token_ids == [tok.eos_token_id] and not comp.truncated and comp.text == ""


def test_sampler_logprobs_match_a_scoring_forward(tiny_llama):
    model, tok = tiny_llama
    cfg = SamplingConfig(temperature=0.7, top_p=0.9, max_new_tokens=5, batch_size=8)
    rollouts = generate(model, tok, PROMPTS, cfg, seed=0, return_logprobs=True)
    with torch.no_grad():
        scored = completion_logprobs(
            model,
            [c.prompt_ids for c in rollouts.completions],
            [c.token_ids for c in rollouts.completions],
            tok.pad_token_id,
        )
    packed, mask = pack_right_aligned(
        [c.logprobs for c in rollouts.completions], width=scored.tokens.shape[1]
    )
    assert torch.equal(mask, scored.mask)
    torch.testing.assert_close(packed, scored.tokens, atol=1e-4, rtol=1e-4)


def test_mismatched_inputs_are_rejected(tiny_llama):
    model, tok = tiny_llama
    with pytest.raises(ValueError, match="prompts"):
        completion_logprobs(model, [[1, 2]], [[3], [4]], tok.pad_token_id)


def _full_logits_logprobs(model, tok, prompts, cfg, seed, num_samples):
    """The sampler log-probs as computed before: every step's full-vocabulary logits, stacked."""
    from advgame.policy.chat import eos_ids, pad_left

    ids = [p for p in encode_prompts(tok, prompts) for _ in range(num_samples)]
    input_ids, mask = pad_left(ids, tok.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            do_sample=True,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=None,
            max_new_tokens=cfg.max_new_tokens,
            eos_token_id=eos_ids(tok),
            pad_token_id=tok.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
    new = out.sequences[:, input_ids.shape[1] :]
    logits = torch.stack(out.logits, dim=1).float()
    return new, logits.gather(-1, new.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


@pytest.mark.parametrize("variant", ["plain", "lora", "bf16_autocast"])
def test_sampler_logprobs_equal_the_full_logits_computation(variant):
    """Per-step log-probs (no full-vocabulary logits kept) equal the old stacked-logits values, through a peft
    wrapper and under bf16 autocast too, and the recorded steps line up with the sampled tokens."""
    from advgame.config.schema import LoraConfig
    from advgame.models.loading import make_trainable
    from advgame.models.precision import enable_autocast
    from advgame.models.tiny import tiny_model

    model, tok = tiny_model("qwen2", seed=0)
    if variant == "lora":
        model = make_trainable(model, "lora", LoraConfig(r=4, alpha=8))
        torch.manual_seed(1)
        for name, p in model.named_parameters():  # a non-zero adapter, so that it changes the logits
            if "lora_B" in name:
                p.data.normal_(0, 0.5)
    if variant == "bf16_autocast":
        enable_autocast(model, torch.bfloat16)
    model.eval()
    cfg = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=12, batch_size=16)
    rollouts = generate(model, tok, PROMPTS, cfg, seed=5, num_samples=2, return_logprobs=True)
    tokens, reference = _full_logits_logprobs(model, tok, PROMPTS, cfg, seed=5, num_samples=2)
    for i, c in enumerate(rollouts.completions):
        assert c.token_ids == tokens[i, : len(c.token_ids)].tolist()
        torch.testing.assert_close(
            torch.tensor(c.logprobs), reference[i, : len(c.token_ids)], atol=1e-5, rtol=0
        )
    assert any(len(c.token_ids) == cfg.max_new_tokens for c in rollouts.completions)
