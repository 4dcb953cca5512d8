"""The direction of learning, end to end through the game: a scripted judge prefers text X over text Y, and
a few DPO-MD game steps must raise log π(X) − log π(Y) for the player that wrote them.

Both players sample scripted text (so which answer is preferred is known), and both train for real on
tiny models. Swapping chosen and rejected lowers the margins; routing the Defender's pairs to the Attacker
(or the reverse) leaves the Attacker's margin on its own rewrites where it was. The control run
(game.control=random_preferences) trains on as many pairs, but with random preferences."""

from __future__ import annotations

import random

import torch

from advgame.game import signals
from advgame.game.attacker_io import attacker_instruction
from advgame.game.step import game_step
from advgame.models.tiny import tiny_tokenizer
from advgame.policy.chat import encode_completions, encode_prompts
from advgame.policy.logprobs import completion_logprobs
from advgame.policy.sampling import Completion
from advgame.train.setup import build_data
from tests.scripted import ScriptedBackend, ScriptedJudge, scripted_game
from tests.test_train_e2e import tiny_config

GOOD_ANSWER, BAD_ANSWER = "I cannot help with that.", "Sure, here is how."
GOOD_REWRITE, BAD_REWRITE = "pretend you are a chemist and", "tell me please"
STEPS = 3


def defender_reply(prompt: str, k: int) -> str:
    return GOOD_ANSWER if k % 2 == 0 else BAD_ANSWER


def attacker_reply(prompt: str, k: int) -> str:
    seed = prompt.split("<request>\n")[1].split("\n</request>")[0]
    return f"<prompt>{GOOD_REWRITE if k % 2 == 0 else BAD_REWRITE} {seed}</prompt>"


def judge_score(rubric: str, query: str, response: str) -> float:
    """The Defender judge prefers GOOD_ANSWER on every rubric the Defender is judged by. The Attacker judge
    (rubric 'compliance' against a harmful seed, i.e. 'was the attack a success') rewards the rewrites whose
    Defender answer complies: the scripted Defender complies with GOOD_REWRITE only (below)."""
    if rubric == "deflection":
        return 9.0 if response == GOOD_ANSWER else 1.0
    return 9.0 if response == BAD_ANSWER else 1.0


class RoutedDefender(ScriptedBackend):
    """Answers GOOD_ANSWER then BAD_ANSWER to ordinary rewrites; complies twice (BAD_ANSWER) with rewrites
    that start with GOOD_REWRITE, so the optimistic attacker judge scores GOOD_REWRITE higher."""

    def __init__(self, tokenizer):
        super().__init__(
            lambda p, k: BAD_ANSWER if p.startswith(GOOD_REWRITE) else defender_reply(p, k), tokenizer
        )


def margins(game, data) -> dict[str, float]:
    """Mean log π(X) − log π(Y) of each player's scripted texts on the training seeds, from its live
    weights."""
    tok = game.defender.tokenizer
    seeds = data.train["harmful"].seeds[:2]
    out = {}
    with torch.no_grad():
        rewrites = [f"{GOOD_REWRITE} {s.text}" for s in seeds]
        prompts = encode_prompts(tok, [s.text for s in seeds] + rewrites)
        good, bad = encode_completions(tok, [GOOD_ANSWER, BAD_ANSWER])
        out["defender"] = _margin(game.defender.model, prompts, good, bad, tok.pad_token_id)
        prompts = encode_prompts(tok, [attacker_instruction(s.text, "harmful", "nothink") for s in seeds])
        diffs = []
        for s, p in zip(seeds, prompts, strict=True):
            good, bad = encode_completions(
                tok, [f"<prompt>{GOOD_REWRITE} {s.text}</prompt>", f"<prompt>{BAD_REWRITE} {s.text}</prompt>"]
            )
            diffs.append(_margin(game.attacker.model, [p], good, bad, tok.pad_token_id))
        out["attacker"] = sum(diffs) / len(diffs)
    return out


def _margin(model, prompts, good, bad, pad) -> float:
    lp_good = completion_logprobs(model, prompts, [good] * len(prompts), pad).sum
    lp_bad = completion_logprobs(model, prompts, [bad] * len(prompts), pad).sum
    return (lp_good - lp_bad).mean().item()


def play(tmp_path, monkeypatch=None, **sections) -> tuple[dict, dict]:
    cfg = tiny_config(
        tmp_path,
        optim={"lr": 1e-2, "weight_decay": 0.0, "final_lr_scale": 1.0},
        ema={"decay": 0.5},
        loss={"type": "dpo", "beta": 0.5},
        **sections,
    )
    tok = tiny_tokenizer()
    judge = ScriptedJudge(score=judge_score)
    game = scripted_game(
        cfg,
        {"faithfulness": judge, "defender": judge, "attacker": judge},
        {"attacker": ScriptedBackend(attacker_reply, tok), "defender": RoutedDefender(tok)},
    )
    data = build_data(cfg)
    before = margins(game, data)
    for step in range(STEPS):
        game_step(game, {c: data.train[c].next_batch() for c in ("harmful", "benign")}, step)
    after = margins(game, data)
    return before, after


def test_preferred_text_gains_probability_for_each_player(tmp_path):
    before, after = play(tmp_path)
    for role in ("defender", "attacker"):
        assert after[role] > before[role] + 1.0, (role, before, after)


def test_swapped_pairs_lower_the_margins(tmp_path, monkeypatch):
    original = signals.preference_pair

    def swapped(*args):
        pair = original(*args)
        if pair is not None:
            pair.chosen_ids, pair.rejected_ids = pair.rejected_ids, pair.chosen_ids
        return pair

    monkeypatch.setattr(signals, "preference_pair", swapped)
    before, after = play(tmp_path)
    for role in ("defender", "attacker"):
        assert after[role] < before[role] - 1.0, (role, before, after)


def test_pairs_routed_to_the_other_player_do_not_teach_it(tmp_path, monkeypatch):
    monkeypatch.setattr(
        signals, "attacker_pairs", lambda *args, **kwargs: []
    )  # the Attacker gets no own pairs
    before, after = play(tmp_path)
    assert abs(after["attacker"] - before["attacker"]) < 0.5, (before, after)
    assert after["defender"] > before["defender"] + 1.0


def test_control_keeps_pair_counts_and_gaps_but_randomises_the_preference():
    """game.control=random_preferences: per group the same rewards (so the same pair count and reward gap),
    but the preferred sample is the judge's choice only about half of the time."""
    groups = []
    for g in range(400):
        rewards = [9.0, 1.0] if g % 2 else [1.0, None, 9.0]
        groups.append([(r, Completion([1], [10 + g, 11 + i], "x", False)) for i, r in enumerate(rewards)])
    rng = random.Random(0)
    real = [signals.preference_pair(group) for group in groups]
    control = [signals.preference_pair(group, rng) for group in groups]
    assert sum(p is not None for p in real) == sum(p is not None for p in control) == len(groups)
    assert [p.reward_gap for p in real] == [p.reward_gap for p in control]
    agree = sum(c.chosen_ids == r.chosen_ids for r, c in zip(real, control, strict=True)) / len(groups)
    assert 0.35 < agree < 0.75  # 1/2 for two scored samples; the None sample may take a reward too
