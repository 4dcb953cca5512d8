"""GRPO's update on a tiny player: the truncated importance weight is kept per rollout, and its mean and
clipped fraction are reported."""

from __future__ import annotations

import pytest
import torch

from advgame.config.schema import EMAConfig, LossConfig
from advgame.game.signals import Rollout
from advgame.game.update import grpo_backward
from advgame.models.tiny import tiny_model
from advgame.player import Player
from advgame.policy.logprobs import completion_logprobs

ON_POLICY = EMAConfig(enabled=True, decay=0.5, sample_from_ema=False, ema_as_reference=False)
LOSS = LossConfig(type="grpo", beta=0.1, is_cap=2.0)


def _player() -> Player:
    model, tok = tiny_model("llama", seed=0)
    return Player(name="defender", model=model.train(), tokenizer=tok, ema_cfg=ON_POLICY)


def _rollouts(player: Player) -> list[Rollout]:
    tok = player.tokenizer
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]
    texts = [
        ("How do I bake a cake?", "Preheat the oven.", 8.0),
        ("Explain vaccines.", "I can't help.", 2.0),
        ("What is the capital?", "Paris, of course.", 6.0),
    ]
    rollouts = [
        Rollout(ids(p), ids(c), r, group=i, sampler_logprobs=None) for i, (p, c, r) in enumerate(texts)
    ]
    with torch.no_grad():
        pol = completion_logprobs(
            player.model,
            [r.prompt_ids for r in rollouts],
            [r.completion_ids for r in rollouts],
            tok.pad_token_id,
        )
    for i, r in enumerate(rollouts):  # the sampler was another policy: ratios e^{±0.4} and e^{1.2} (> cap 2)
        row = pol.tokens[i][pol.mask[i]].tolist()
        r.sampler_logprobs = [
            lp - (0.4 if t % 2 else 1.2) * (1 if i % 2 == 0 else -1) for t, lp in enumerate(row)
        ]
    return rollouts


def _grads(player: Player, rollouts, microbatch: int):
    player.model.zero_grad(set_to_none=True)
    stats = grpo_backward(player, rollouts, LOSS, microbatch, use_sampler_logprobs=True)
    return {n: p.grad.clone() for n, p in player.model.named_parameters() if p.grad is not None}, stats


def test_a_rollout_without_sampler_logprobs_does_not_cost_its_neighbours_their_weight():
    player = _player()
    rollouts = _rollouts(player)
    rollouts[1].sampler_logprobs = None  # e.g. an engine reply that came back without log-probs
    together, stats = _grads(player, rollouts, microbatch=3)  # one micro-batch holding all three
    alone, _ = _grads(player, rollouts, microbatch=1)  # each rollout on its own
    for name, g in together.items():
        torch.testing.assert_close(g, alone[name], rtol=1e-4, atol=1e-6, msg=name)
    assert stats.extra["sampler_logprobs_missing"] == pytest.approx(1 / 3)
    assert 0 < stats.extra["is_clipped_fraction"] < 1
    assert stats.extra["importance_weight"] != pytest.approx(1.0)
    # and the weight matters: without any sampler log-probs the gradient is a different one
    for r in rollouts:
        r.sampler_logprobs = None
    unweighted, stats = _grads(player, rollouts, microbatch=3)
    assert any(not torch.allclose(g, unweighted[n], rtol=1e-3) for n, g in together.items())
    assert stats.extra["sampler_logprobs_missing"] == 1.0
