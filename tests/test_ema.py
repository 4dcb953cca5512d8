"""EMA algebra, LoRA-only storage, weight swapping, and the Player's sampling/reference roles."""

from __future__ import annotations

import pytest
import torch

from advgame.config.schema import EMAConfig, LoraConfig
from advgame.ema import ParamBank, ParamEMA
from advgame.models.loading import make_trainable
from advgame.models.tiny import tiny_model
from advgame.player import Player


def _set_all(model, value_of):
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            if p.requires_grad:
                p.fill_(value_of(i))


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.95])
def test_ema_equals_closed_form_weighted_sum(decay):
    model, _ = tiny_model("llama")
    theta = [1.0, -2.0, 3.0, 0.5, 4.0]  # θ_0 (initial) then θ_1..θ_4 after each "step"
    _set_all(model, lambda i: theta[0] * (i + 1))
    ema = ParamEMA(model, decay)
    for value in theta[1:]:
        _set_all(model, lambda i, v=value: v * (i + 1))
        ema.update(model)
    k = len(theta) - 1
    # θ̄_k = d^k θ_0 + Σ_{j=1..k} (1−d) d^{k−j} θ_j
    closed = decay**k * theta[0] + sum((1 - decay) * decay ** (k - j) * theta[j] for j in range(1, k + 1))
    for i, (name, tensor) in enumerate(ema.tensors.items()):
        torch.testing.assert_close(tensor, torch.full_like(tensor, closed * (i + 1)), rtol=1e-5, atol=1e-6)
    assert ema.num_updates == k


def test_ema_rejects_bad_decay():
    model, _ = tiny_model("llama")
    with pytest.raises(ValueError, match="decay"):
        ParamEMA(model, 1.0)


def test_lora_ema_stores_only_adapter_tensors():
    model, _ = tiny_model("llama")
    full_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    peft_model = make_trainable(model, "lora", LoraConfig(r=4, alpha=8))
    ema = ParamEMA(peft_model, 0.9)
    assert ema.tensors and all("lora_" in name for name in ema.tensors)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert set(ema.tensors) == trainable
    assert ema.num_bytes() < 0.2 * full_bytes


def test_swapped_in_uses_bank_weights_and_restores_even_on_error():
    model, tok = tiny_model("llama")
    bank = ParamBank(model)
    ids = torch.tensor([tok("hello there")["input_ids"]])
    before = model(ids).logits
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    after = model(ids).logits
    with bank.swapped_in(model):
        torch.testing.assert_close(model(ids).logits, before)
    torch.testing.assert_close(model(ids).logits, after)
    with pytest.raises(RuntimeError), bank.swapped_in(model):
        raise RuntimeError("boom")
    torch.testing.assert_close(model(ids).logits, after)


def _player(ema_cfg):
    model, tok = tiny_model("llama")
    return Player(name="defender", model=model, tokenizer=tok, ema_cfg=ema_cfg)


def _first(model):
    return next(model.parameters()).detach().clone()


def test_player_md_samples_and_scores_with_the_ema():
    player = _player(EMAConfig(decay=0.5))
    theta0 = _first(player.model)
    with torch.no_grad():
        next(player.model.parameters()).add_(1.0)
    player.end_step()  # EMA = θ0 + 0.5
    for ctx in (player.sampling_weights(), player.reference_weights()):
        with ctx as m:
            torch.testing.assert_close(_first(m), theta0 + 0.5)
    torch.testing.assert_close(_first(player.model), theta0 + 1.0)


def test_player_on_policy_samples_current_and_scores_with_initial():
    player = _player(EMAConfig(enabled=False, sample_from_ema=False, ema_as_reference=False))
    assert player.ema is None
    theta0 = _first(player.model)
    with torch.no_grad():
        next(player.model.parameters()).add_(1.0)
    player.end_step()
    with player.sampling_weights() as m:
        torch.testing.assert_close(_first(m), theta0 + 1.0)
    with player.reference_weights() as m:
        torch.testing.assert_close(_first(m), theta0)
