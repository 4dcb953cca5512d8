"""game.overlap_judges: the first split's judges run while the second split generates, and the lag is logged."""

from __future__ import annotations

import threading
import time

import pytest

from advgame.config import ConfigError
from tests.scripted import ScriptedJudge
from tests.test_train_e2e import FAMILIES, judge_score, scripted, tiny_config, train, train_rows


class SlowJudge(ScriptedJudge):
    """Scores after a pause, recording when and on which thread each call ran."""

    def __init__(self):
        super().__init__(score=judge_score, faithful=lambda seed, prompt: "unfaithful" not in prompt)
        self.calls: list[tuple[str, float, float, str]] = []

    def score_pairs(self, items):
        start = time.perf_counter()
        time.sleep(0.3)
        out = super().score_pairs(items)
        self.calls.append((items[0].rubric, start, time.perf_counter(), threading.current_thread().name))
        return out


def _run(tmp_path, **sections):
    cfg = tiny_config(tmp_path, game__overlap_judges=True, game__attacker_format="nothink", train__steps=1, **sections)
    judges, backends = scripted(cfg)
    slow = SlowJudge()
    judges.update(defender=slow, attacker=slow)
    starts: list[float] = []
    attacker = backends["attacker"]
    generate = attacker.generate
    attacker.generate = lambda *a, **k: (starts.append(time.perf_counter()), generate(*a, **k))[1]
    run_dir = train(cfg, tmp_path / "run", judge_overrides=judges, backend_overrides=backends)
    return slow, starts, train_rows(run_dir)[0]


def test_first_split_judges_overlap_second_split_generation(tmp_path):
    slow, starts, row = _run(tmp_path)
    harmful_calls = [c for c in slow.calls if c[0] in ("deflection", "compliance") and c[3] != threading.main_thread().name]
    assert harmful_calls, "the harmful split was not judged in a background thread"
    benign_generation = starts[-1]  # the attacker's last generate call: the benign split
    assert any(start < benign_generation < end for _, start, end, _ in harmful_calls)
    assert row["harmful/defender/pairs"] > 0 and row["benign/defender/pairs"] > 0
    assert row["benign/policy_lag"] == 0.0  # MD: the sampler is the EMA, which moves after both splits


def test_on_policy_overlap_reports_a_lag_of_one_update(tmp_path):
    _, _, row = _run(tmp_path, **{k: v for k, v in FAMILIES["grpo"].items() if k != "judges"},
                     judges={"default": {"kind": "heuristic", "mode": "pairwise"}})
    assert row["benign/policy_lag"] == 1.0


def test_overlap_refuses_a_player_as_judge(tmp_path):
    with pytest.raises(ConfigError, match="overlap_judges"):
        tiny_config(tmp_path, game__overlap_judges=True, judges={"default": {"kind": "model", "model": "defender"}})
