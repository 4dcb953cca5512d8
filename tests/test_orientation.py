"""Which way the update moves, and whom it moves: a scripted judge that prefers one answer makes the
player that produced it more likely to produce it again, relative to the answer the judge liked less;
Attacker signal trains the Attacker and Defender signal the Defender. The check is shown to have teeth:
with chosen and rejected swapped it fails."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from advgame.game import signals, step, update
from advgame.models.tiny import tiny_tokenizer
from advgame.policy.logprobs import completion_logprobs
from advgame.train.setup import build_data
from tests.scripted import ScriptedBackend, ScriptedJudge, scripted_game
from tests.test_train_e2e import FAMILIES, attacker_reply, defender_reply, tiny_config


def prefers_refusal(rubric: str, query: str, response: str) -> float:
    """Every rubric prefers the refusal, so every group has one clear winner."""
    return 8.0 if response.startswith("I cannot") else 2.0


def _game(tmp_path, family: str):
    cfg = tiny_config(tmp_path, **FAMILIES[family], train__steps=1, optim={"lr": 1e-3})
    judge = ScriptedJudge(score=prefers_refusal, faithful=lambda seed, prompt: "unfaithful" not in prompt)
    tok = tiny_tokenizer()
    backends = {
        "attacker": ScriptedBackend(attacker_reply, tok),
        "defender": ScriptedBackend(defender_reply, tok),
    }
    return scripted_game(cfg, {"faithfulness": judge, "defender": judge, "attacker": judge}, backends)


def _margin(player, pairs) -> torch.Tensor:
    """log π(chosen) − log π(rejected) per pair, under the player's live weights."""
    with torch.no_grad():
        prompts = [p.prompt_ids for p in pairs] * 2
        lp = completion_logprobs(
            player.model,
            prompts,
            [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs],
            player.tokenizer.pad_token_id,
        ).sum
    return lp[: len(pairs)] - lp[len(pairs) :]


def _update_moves(tmp_path, family: str, monkeypatch, swap: bool = False):
    """One harmful split, one update of both players. Returns, per role, the pairs the judge ordered (chosen =
    the higher reward) with the change of their margin under that role's player, and who received what."""
    game = _game(tmp_path, family)
    tree = step.play_split(game, build_data(game.cfg).train["harmful"].next_batch(), 0, "harmful", Counter())
    judged = {"attacker": signals.attacker_pairs(tree), "defender": signals.defender_pairs(tree)}
    expected = (
        judged
        if family != "grpo"
        else {"attacker": signals.attacker_rollouts(tree), "defender": signals.defender_rollouts(tree)}
    )
    players = {"attacker": game.attacker, "defender": game.defender}
    before = {role: _margin(players[role], judged[role]) for role in players}

    received: dict[str, list] = {}
    for name in ("preference_backward", "grpo_backward"):
        real = getattr(update, name)

        def spy(player, batch, *args, _real=real, **kwargs):
            received[player.name] = list(batch)
            return _real(player, batch, *args, **kwargs)

        monkeypatch.setattr(update, name, spy)
    if swap:  # a bug that trains on the rejected sample as if it were the chosen one
        real_pair = signals.preference_pair

        def swapped(*args):
            pair = real_pair(*args)
            return pair and signals.Pair(pair.prompt_ids, pair.rejected_ids, pair.chosen_ids, pair.reward_gap)

        monkeypatch.setattr(signals, "preference_pair", swapped)
        for fn in (
            signals.attacker_rollouts,
            signals.defender_rollouts,
        ):  # GRPO: the same bug is a sign error on the reward
            monkeypatch.setattr(
                signals,
                fn.__name__,
                lambda tree, rng=None, _fn=fn: [
                    signals.Rollout(r.prompt_ids, r.completion_ids, -r.reward, r.group, r.sampler_logprobs)
                    for r in _fn(tree, rng)
                ],
            )
    step.update_players(game, tree, ("attacker", "defender"))
    moved = {role: _margin(players[role], judged[role]) - before[role] for role in players}
    return judged, moved, received, expected


def assert_oriented(moved) -> None:
    for role, delta in moved.items():
        assert len(delta) > 0 and (delta > 0).all(), (
            f"{role}: the preferred sample did not gain: {delta.tolist()}"
        )


@pytest.mark.parametrize("family", ["dpo_md", "grpo"])
def test_the_preferred_sample_gains_for_the_player_that_wrote_it(tmp_path, monkeypatch, family):
    _, moved, received, expected = _update_moves(tmp_path, family, monkeypatch)
    assert_oriented(moved)
    # role routing: the Attacker's signal (its rewrites of the attacker prompt) went to the Attacker, the
    # Defender's (its answers to the rewrites) to the Defender, all of it and nothing else
    assert received == expected
    tok = tiny_tokenizer()
    assert all("<request>" in tok.decode(p.prompt_ids) for p in expected["attacker"])
    assert all("<request>" not in tok.decode(p.prompt_ids) for p in expected["defender"])


@pytest.mark.parametrize("family", ["dpo_md", "grpo"])
def test_swapping_chosen_and_rejected_fails_the_check(tmp_path, monkeypatch, family):
    _, moved, _, _ = _update_moves(tmp_path, family, monkeypatch, swap=True)
    with pytest.raises(AssertionError, match="did not gain"):
        assert_oriented(moved)
    assert all((delta < 0).all() for delta in moved.values())
