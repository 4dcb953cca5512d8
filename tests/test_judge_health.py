"""Judges that never answer (issue 15 item 4) and per-role judge counters (item 11)."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from advgame.config.schema import JudgeConfig
from advgame.judges.base import FaithItem, PairItem, RoleView
from advgame.judges.factory import build_judge
from advgame.train.judge_health import FailureStreak, JudgeUnavailable, check_judges
from tests.scripted import ScriptedJudge, scripted_game


def game_with(judge, attacker=True):
    views = {r: RoleView(judge, r) for r in ("faithfulness", "defender", "attacker")}
    return SimpleNamespace(
        judges=SimpleNamespace(
            faithfulness=views["faithfulness"],
            defender=SimpleNamespace(judge=views["defender"]),
            attacker=SimpleNamespace(judge=views["attacker"]) if attacker else None,
        )
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: connections are refused


def test_an_endpoint_judge_that_is_down_fails_the_start_check_naming_it():
    pytest.importorskip("openai")
    url = f"http://127.0.0.1:{closed_port()}/v1"
    judge = build_judge(JudgeConfig(kind="openai", model="m", base_urls=[url], max_retries=0, timeout_s=5))
    with pytest.raises(JudgeUnavailable) as err:
        check_judges(game_with(judge))
    msg = str(err.value)
    assert url in msg and "connection" in msg and "\n" not in msg


def test_in_process_judges_need_no_start_check():
    check_judges(game_with(ScriptedJudge()))  # nothing to call: no error


def _step(game, fail: bool):
    game.judges.defender.judge.score_pairs([PairItem("compliance", "q", "a", "b")] * 2)
    game.judges.faithfulness.faithful([FaithItem("s", "p", "harmful")])


def test_every_call_failing_for_n_steps_stops_with_one_line():
    failing = ScriptedJudge(score=lambda *a: None, faithful=lambda *a: None)
    game = game_with(failing)
    streak = FailureStreak(game, limit=3)
    for step in (1, 2):
        _step(game, True)
        streak.after_step(step)
    _step(game, True)
    with pytest.raises(
        JudgeUnavailable, match=r"step 3: every judge call failed for 3 consecutive steps.*scripted_failure"
    ):
        streak.after_step(3)


def test_a_success_resets_the_streak_and_zero_disables_it():
    flaky = {"fail": True}
    judge = ScriptedJudge(
        score=lambda *a: None if flaky["fail"] else 5.0, faithful=lambda *a: None if flaky["fail"] else True
    )
    game = game_with(judge)
    streak = FailureStreak(game, limit=2)
    _step(game, True)
    streak.after_step(1)
    flaky["fail"] = False
    _step(game, False)
    streak.after_step(2)
    flaky["fail"] = True
    _step(game, True)
    streak.after_step(3)  # one failing step after a success: still running
    assert streak.streak == 1
    never = FailureStreak(game, limit=0)
    for step in range(5):
        _step(game, True)
        never.after_step(step)


def test_training_with_judges_that_never_answer_stops_instead_of_finishing(tmp_path):
    from advgame.train.trainer import train
    from tests.test_train_e2e import scripted, tiny_config

    cfg = tiny_config(
        tmp_path,
        train__steps=6,
        train__validation_size=0,
        checkpoint__every_n_steps=100,
        judges={"default": {"kind": "heuristic"}, "stop_after_failing_steps": 2},
    )
    _, backends = scripted(cfg)
    dead = ScriptedJudge(score=lambda *a: None, faithful=lambda *a: None)
    game = scripted_game(cfg, {r: dead for r in ("faithfulness", "defender", "attacker")}, backends)
    with pytest.raises(JudgeUnavailable, match="step 2: every judge call failed"):
        train(cfg, tmp_path / "run", game=game)
    assert not (tmp_path / "run" / "final").exists()


def test_roles_sharing_one_judge_object_have_separate_counters():
    from advgame.train.setup import game_judges
    from tests.test_train_e2e import tiny_config

    cfg = tiny_config(__import__("pathlib").Path("/tmp"))
    shared = ScriptedJudge()
    judges = game_judges(cfg, shared, shared, shared)
    judges.faithfulness.faithful([FaithItem("s", "p", "harmful")] * 3)
    judges.defender.judge.score_pairs([PairItem("deflection", "q", "a", "b")] * 2)
    assert judges.faithfulness.stats.calls == 3 and judges.defender.judge.stats.calls == 2
    assert judges.attacker.judge.stats.calls == 0 and shared.stats.calls == 5
    assert judges.defender.judge.name == "scripted"  # the view is the judge in everything but its counters
