"""The rollout tree's bookkeeping on known judge outputs: −1 patches, the faithfulness gate, optimistic
selection, pairs (ties dropped, judge failures excluded, clipping) and GRPO rollouts."""

from __future__ import annotations

import random
from contextlib import nullcontext
from types import SimpleNamespace

import pytest

from advgame.config.schema import SamplingConfig
from advgame.data.seeds import SeedPrompt
from advgame.game import rollout, scoring, signals
from advgame.game.scoring import RoleJudge
from advgame.game.tree import PENALTY, AnswerStatus, RewriteStatus
from advgame.losses import grpo_advantages
from tests.scripted import ScriptedBackend, ScriptedJudge

SAMPLING = SamplingConfig(max_new_tokens=8)

ATTACKER_SCRIPT = {
    # seed -> the attacker's two outputs (nothink format)
    "seed zero": ["<prompt>x00</prompt>", "<prompt>x01 unfaithful</prompt>"],
    "seed one": ["no tags at all", ("<prompt>x11", True)],
    "seed two": ["<prompt>x20</prompt>", "<prompt>x21</prompt>"],
}
DEFENDER_SCRIPT = {
    "x00": ["refuse A", "comply B"],
    "x20": ["comply C", ("comply D truncated and much longer than the other answer", True)],
    "x21": ["refuse E", "refuse F"],
}
DEFENDER_SCORES = {"refuse": 8.0, "comply": 2.0}  # deflection rubric
ATTACKER_SCORES = {"refuse": 1.0, "comply": 9.0}  # compliance rubric


def _player(script):
    def reply(prompt: str, k: int):
        for key, outs in script.items():
            if key in prompt:
                return outs[k]
        raise AssertionError(f"unexpected prompt {prompt!r}")

    backend = ScriptedBackend(reply)
    return SimpleNamespace(backend=backend, sampling_weights=nullcontext)


def _score(table):
    def score(rubric, query, response):
        return next(v for k, v in table.items() if response.startswith(k))

    return score


def _play(optimistic=True, defender_score=None, mode="pairwise"):
    attacker, defender = _player(ATTACKER_SCRIPT), _player(DEFENDER_SCRIPT)
    faith = ScriptedJudge(faithful=lambda seed, prompt: "unfaithful" not in prompt)
    def_judge = ScriptedJudge(score=defender_score or _score(DEFENDER_SCORES))
    att_judge = ScriptedJudge(score=_score(ATTACKER_SCORES))
    seeds = [SeedPrompt(text=t, category="harmful", source="test") for t in ATTACKER_SCRIPT]
    tree = rollout.attack(seeds, attacker, SAMPLING, num_samples=2, fmt="nothink", seed=0)
    rollout.gate_faithfulness(tree, faith)
    rollout.defend(tree, defender, SAMPLING, num_samples=2, seed=0)
    scoring.judge_answers(tree, RoleJudge(def_judge, mode))
    scoring.select_answers(tree, optimistic=optimistic)
    scoring.judge_attacks(tree, RoleJudge(att_judge, mode))
    return tree, defender.backend, def_judge, att_judge


def test_statuses_and_penalties():
    tree, _, _, _ = _play()
    s0, s1, s2 = tree
    assert [r.status for r in s0.rewrites] == [RewriteStatus.OK, RewriteStatus.UNFAITHFUL]
    assert [r.status for r in s1.rewrites] == [RewriteStatus.PARSE_ERROR, RewriteStatus.TRUNCATED]
    assert [r.reward for r in s1.rewrites] == [PENALTY, PENALTY]
    assert s0.rewrites[1].reward == PENALTY and s0.rewrites[1].answers == []
    assert s2.rewrites[0].answers[1].status == AnswerStatus.TRUNCATED
    assert s2.rewrites[0].answers[1].reward == PENALTY


def test_defender_sees_only_faithful_parsed_rewrites():
    _, defender_backend, def_judge, _ = _play()
    assert sorted(set(defender_backend.prompts)) == ["x00", "x20", "x21"]
    assert all("seed" not in p for p in defender_backend.prompts)
    assert {item.query for item in def_judge.seen_pairs} == {"x00", "x20", "x21"}  # defender judge sees x


def test_optimistic_selection_and_attacker_judge_on_seed():
    tree, _, _, att_judge = _play()
    x00 = tree[0].rewrites[0]
    assert x00.selected == 0  # "refuse A" (8) beats "comply B" (2) under the defender judge
    assert x00.score == ATTACKER_SCORES["refuse"] and x00.reward == 1.0
    x20 = tree[2].rewrites[0]
    assert x20.selected == 0  # the truncated answer has no score and is never selected
    assert {item.query for item in att_judge.seen_pairs} == {"seed zero", "seed two"}  # the seed, never x
    assert {i.rubric for i in att_judge.seen_pairs} == {"compliance"}
    x21 = tree[2].rewrites[1]
    assert x21.selected == 0 and x21.score == ATTACKER_SCORES["refuse"]  # tie between answers: first index


def test_lone_candidate_is_judged_against_itself():
    tree, _, _, att_judge = _play()
    # seed zero has a single valid rewrite: its selected answer was compared with itself
    lone = [i for i in att_judge.seen_pairs if i.query == "seed zero"]
    assert len(lone) == 1 and lone[0].response_a == lone[0].response_b == "refuse A"
    assert tree[0].rewrites[0].score == ATTACKER_SCORES["refuse"]


def test_non_optimistic_takes_first_finished_answer():
    tree, _, _, _ = _play(optimistic=False, defender_score=_score({"refuse": 2.0, "comply": 8.0}))
    assert tree[0].rewrites[0].selected == 0  # first, although "comply B" is the defender's best


def test_pairs_ties_penalties_and_clipping():
    tree, _, _, _ = _play()
    att = signals.attacker_pairs(tree)
    # seed zero: x00 (reward 1) vs x01 (unfaithful, −1); seed one: −1 vs −1 is a tie; seed two: both
    # rewrites' best answers get compliance 9 ("comply C") and 1 ("refuse E") -> a pair
    assert len(att) == 2
    gaps = sorted(p.reward_gap for p in att)
    assert gaps == [pytest.approx(2.0), pytest.approx(8.0)]
    dfd = signals.defender_pairs(tree)
    # x00: refuse A (8) vs comply B (2); x20: comply C (2) vs truncated (−1), clipped; x21: 8 vs 8 tie
    assert len(dfd) == 2
    clipped = next(p for p in dfd if p.reward_gap == pytest.approx(3.0))
    assert len(clipped.rejected_ids) == len(clipped.chosen_ids)


def test_min_reward_gap_drops_only_the_pairs_below_it():
    tree, _, _, _ = _play()
    # defender gaps 6 (x00) and 3 (x20, clipped); attacker gaps 2 and 8 (see the test above)
    assert sorted(p.reward_gap for p in signals.defender_pairs(tree, min_gap=4.0)) == [pytest.approx(6.0)]
    assert sorted(p.reward_gap for p in signals.attacker_pairs(tree, min_gap=2.0)) == [
        pytest.approx(2.0),
        pytest.approx(8.0),
    ]
    assert signals.attacker_pairs(tree, min_gap=8.5) == []
    # the control shuffles within a group, so it keeps the same groups above the gap
    control = signals.defender_pairs(tree, random.Random(0), min_gap=4.0)
    assert [p.reward_gap for p in control] == [pytest.approx(6.0)]


def test_judge_failures_are_excluded_never_scored():
    def flaky(rubric, query, response):
        return None if response.startswith("comply B") else _score(DEFENDER_SCORES)(rubric, query, response)

    tree, _, def_judge, _ = _play(defender_score=flaky, mode="pointwise")
    x00 = tree[0].rewrites[0]
    assert [a.status for a in x00.answers] == [AnswerStatus.OK, AnswerStatus.JUDGE_FAILED]
    assert x00.answers[1].reward is None
    assert def_judge.stats.failures["scripted_failure"] == 1
    # only one scored answer: no defender pair from x00, and no pair ever has a None side
    assert all(p.reward_gap > 0 for p in signals.defender_pairs(tree))
    assert not any(p.prompt_ids is None for p in signals.defender_pairs(tree))
    assert len(signals.defender_pairs(tree)) == 1  # x20 only


def test_pairwise_failure_leaves_both_candidates_unscored():
    def fail_x00(rubric, query, response):
        return (
            None if response in ("refuse A", "comply B") else _score(DEFENDER_SCORES)(rubric, query, response)
        )

    tree, _, _, _ = _play(defender_score=fail_x00)
    x00 = tree[0].rewrites[0]
    assert [a.score for a in x00.answers] == [None, None]
    assert x00.status == RewriteStatus.JUDGE_FAILED and x00.reward is None  # no defender best response known


def test_grpo_rollouts_and_batch_baseline():
    tree, _, _, _ = _play()
    rolls = signals.attacker_rollouts(tree)
    rewards = [r.reward for r in rolls]
    assert PENALTY in rewards and None not in rewards
    adv, valid = grpo_advantages(rewards, [r.group for r in rolls], mode="batch")
    assert valid.all()
    assert adv.sum().item() == pytest.approx(0.0, abs=1e-5)
    assert adv[rewards.index(max(rewards))] > 0 > adv[rewards.index(PENALTY)]
    d = signals.defender_rollouts(tree)
    assert len(d) == 6 and min(r.reward for r in d) == PENALTY


def test_direct_seeds_train_the_defender_only():
    attacker = _player(ATTACKER_SCRIPT)
    defender = _player({**DEFENDER_SCRIPT, "seed": ["refuse G", "comply H"]})
    judge = ScriptedJudge(
        score=_score({**DEFENDER_SCORES}), faithful=lambda seed, prompt: "unfaithful" not in prompt
    )
    seeds = [SeedPrompt(text="seed zero", category="harmful", source="test")]
    tree = rollout.attack(seeds, attacker, SAMPLING, num_samples=2, fmt="nothink", seed=0, direct_seeds=True)
    rollout.gate_faithfulness(tree, judge)
    rollout.defend(tree, defender, SAMPLING, num_samples=2, seed=0)
    scoring.judge_answers(tree, RoleJudge(judge, "pairwise"))
    scoring.select_answers(tree, optimistic=True)
    scoring.judge_attacks(tree, RoleJudge(judge, "pairwise"))
    direct = tree[0].rewrites[-1]
    assert direct.direct and direct.prompt == "seed zero" and len(tree[0].rewrites) == 3
    assert "seed zero" in defender.backend.prompts  # the Defender answered the seed as written
    assert all(i.prompt != "seed zero" for i in judge.seen_faith)  # no faithfulness call about it
    assert len(signals.defender_pairs(tree)) == 2  # x00 and the direct seed
    assert len(signals.attacker_pairs(tree)) == 1  # x00 vs the unfaithful x01 only
    assert len(signals.attacker_rollouts(tree)) == 2


def test_clip_rejected_on_truncation_can_be_turned_off():
    tree, _, _, _ = _play()
    unclipped = [
        p for p in signals.defender_pairs(tree, clip_truncated=False) if p.reward_gap == pytest.approx(3.0)
    ]
    assert len(unclipped) == 1 and len(unclipped[0].rejected_ids) > len(unclipped[0].chosen_ids)


@pytest.mark.parametrize("clip", [True, False])
def test_update_players_reads_the_clipping_option(clip):
    """`loss.clip_rejected_on_truncation` reaches the pairs the Defender trains on."""
    from advgame.config.schema import GameConfig, LossConfig
    from advgame.game import step, update

    tree, _, _, _ = _play()
    seen = {}

    def record(player, pairs, cfg, microbatch):
        seen[player.name] = pairs
        return update.LossStats(total=0.0)

    game = SimpleNamespace(
        cfg=SimpleNamespace(
            loss=LossConfig(clip_rejected_on_truncation=clip),
            train=SimpleNamespace(microbatch_size=4),
            optim=SimpleNamespace(max_grad_norm=1.0),
            game=GameConfig(),
        ),
        attacker=SimpleNamespace(name="attacker"),
        defender=SimpleNamespace(name="defender"),
    )
    original = update.preference_backward
    update.preference_backward = record
    try:
        step.update_players(game, tree, ("attacker", "defender"))
    finally:
        update.preference_backward = original
    truncated = next(p for p in seen["defender"] if p.reward_gap == pytest.approx(3.0))
    assert (len(truncated.rejected_ids) == len(truncated.chosen_ids)) is clip


def test_non_optimistic_never_selects_an_answer_whose_judgement_failed():
    def first_fails(rubric, query, response):
        return None if response.startswith("refuse A") else _score(DEFENDER_SCORES)(rubric, query, response)

    tree, _, _, att_judge = _play(optimistic=False, defender_score=first_fails, mode="pointwise")
    x00 = tree[0].rewrites[0]
    assert x00.answers[0].status == AnswerStatus.JUDGE_FAILED
    assert x00.selected == 1  # the first answer that was judged, not the failed first one
    assert "refuse A" not in {i.response for i in att_judge.seen_points}


def test_non_optimistic_rewrite_without_a_judged_answer_gets_no_reward():
    def x00_fails(rubric, query, response):
        return (
            None if response in ("refuse A", "comply B") else _score(DEFENDER_SCORES)(rubric, query, response)
        )

    tree, _, _, att_judge = _play(optimistic=False, defender_score=x00_fails, mode="pointwise")
    x00 = tree[0].rewrites[0]
    assert x00.selected is None and x00.status == RewriteStatus.JUDGE_FAILED and x00.reward is None
    assert not {"refuse A", "comply B"} & {i.response for i in att_judge.seen_points}
    # a truncated answer is never selected either: x20's first answer is the finished one
    assert tree[2].rewrites[0].selected == 0
