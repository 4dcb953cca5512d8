"""game.overlap_judges: the first split's judges run while the second split generates, and the lag is logged;
game.split_sampling_weights: which weights sample the benign split, checked on the weights themselves."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest
import torch

from advgame.config import ConfigError
from advgame.game import update
from advgame.player import Player
from tests.scripted import ScriptedJudge, scripted_game
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
    cfg = tiny_config(
        tmp_path, game__overlap_judges=True, game__attacker_format="nothink", train__steps=1, **sections
    )
    judges, backends = scripted(cfg)
    slow = SlowJudge()
    judges.update(defender=slow, attacker=slow)
    starts: list[float] = []
    attacker = backends["attacker"]
    generate = attacker.generate
    attacker.generate = lambda *a, **k: (starts.append(time.perf_counter()), generate(*a, **k))[1]
    run_dir = train(cfg, tmp_path / "run", game=scripted_game(cfg, judges, backends))
    return slow, starts, train_rows(run_dir)[0]


def test_first_split_judges_overlap_second_split_generation(tmp_path):
    slow, starts, row = _run(tmp_path)
    harmful_calls = [
        c for c in slow.calls if c[0] in ("deflection", "compliance") and c[3] != threading.main_thread().name
    ]
    assert harmful_calls, "the harmful split was not judged in a background thread"
    benign_generation = starts[-1]  # the attacker's last generate call: the benign split
    assert any(start < benign_generation < end for _, start, end, _ in harmful_calls)
    assert row["harmful/defender/pairs"] > 0 and row["benign/defender/pairs"] > 0
    assert row["benign/policy_lag"] == 0.0  # MD: the sampler is the EMA, which moves after both splits


class WeightLog:
    """Each player's trainable weights when it samples (`sampling_weights`, after any EMA swap) and right
    after each of its optimiser steps, in order: [(event, player, flat weights)]."""

    def __init__(self, monkeypatch):
        self.events: list[tuple[str, str, torch.Tensor]] = []
        sampling_weights = Player.sampling_weights
        optimizer_step = update.optimizer_step

        @contextmanager
        def spy_sampling(player):
            with sampling_weights(player) as model:
                self.events.append(("sample", player.name, self.flat(player)))
                yield model

        def spy_step(player, max_grad_norm):
            norm = optimizer_step(player, max_grad_norm)
            self.events.append(("step", player.name, self.flat(player)))
            return norm

        monkeypatch.setattr(Player, "sampling_weights", spy_sampling)
        monkeypatch.setattr(update, "optimizer_step", spy_step)

    @staticmethod
    def flat(player) -> torch.Tensor:
        return torch.cat([p.detach().flatten().clone() for p in player.model.parameters() if p.requires_grad])

    def of(self, event: str, name: str) -> list[torch.Tensor]:
        return [w for e, n, w in self.events if e == event and n == name]


ON_POLICY = {k: v for k, v in FAMILIES["grpo"].items() if k != "judges"}


@pytest.mark.parametrize("how", ["overlap", "step_start", "latest"])
def test_which_weights_sample_the_benign_split_on_policy(tmp_path, monkeypatch, how):
    """On-policy, the benign split is sampled before the harmful update (overlap_judges, or the authors'
    order: split_sampling_weights=step_start) or after it (latest, the default)."""
    log = WeightLog(monkeypatch)
    sections = {**ON_POLICY, "judges": {"default": {"kind": "heuristic", "mode": "pairwise"}}}
    if how == "overlap":
        _, _, row = _run(tmp_path, **sections)
    else:
        cfg = tiny_config(
            tmp_path,
            game__split_sampling_weights=how,
            game__attacker_format="nothink",
            train__steps=1,
            **sections,
        )
        judges, backends = scripted(cfg)
        row = train_rows(train(cfg, tmp_path / "run", game=scripted_game(cfg, judges, backends)))[0]
    for name in ("attacker", "defender"):
        (harmful, benign), (after_harmful, _) = log.of("sample", name), log.of("step", name)
        assert not torch.equal(harmful, after_harmful)  # the harmful update moved the player
        if how == "latest":
            assert torch.equal(benign, after_harmful)
        else:
            assert torch.equal(benign, harmful)  # one update behind when the benign update runs
    assert row.get("benign/policy_lag", 0.0) == (0.0 if how == "latest" else 1.0)


@pytest.mark.parametrize("how", ["step_start", "latest"])
def test_md_samples_both_splits_from_the_same_ema(tmp_path, monkeypatch, how):
    log = WeightLog(monkeypatch)
    cfg = tiny_config(
        tmp_path, game__split_sampling_weights=how, game__attacker_format="nothink", train__steps=1
    )
    judges, backends = scripted(cfg)
    row = train_rows(train(cfg, tmp_path / "run", game=scripted_game(cfg, judges, backends)))[0]
    for name in ("attacker", "defender"):
        harmful, benign = log.of("sample", name)
        assert torch.equal(harmful, benign) and not torch.equal(benign, log.of("step", name)[0])
    assert row.get("benign/policy_lag", 0.0) == 0.0


def test_overlap_refuses_a_player_as_judge(tmp_path):
    with pytest.raises(ConfigError, match="overlap_judges"):
        tiny_config(
            tmp_path, game__overlap_judges=True, judges={"default": {"kind": "model", "model": "defender"}}
        )
