"""The project's own errors: bad input becomes one line from `advgame train`; anything else is a bug and
keeps its traceback."""

from __future__ import annotations

import pytest

from advgame.config import ConfigError
from advgame.data.seeds import SeedDataError
from advgame.data.strict_csv import TableError
from advgame.errors import AdvGameError, DataError
from advgame.extras import MissingExtraError
from advgame.models.gguf import ModelNotFoundError
from advgame.models.loading import DeviceUnavailable
from advgame.train import trainer
from advgame.train.checkpoint import CheckpointError
from advgame.train.judge_health import JudgeUnavailable
from advgame.train.launcher import LauncherError
from advgame.train.run import EXIT_BAD_INPUT, run_training
from tests.test_train_e2e import tiny_config


@pytest.mark.parametrize(
    "error, also",
    [
        (ConfigError, ValueError),
        (LauncherError, ConfigError),
        (DataError, ValueError),
        (SeedDataError, DataError),
        (TableError, DataError),
        (ModelNotFoundError, FileNotFoundError),
        (DeviceUnavailable, RuntimeError),
        (CheckpointError, RuntimeError),
        (JudgeUnavailable, RuntimeError),
        (MissingExtraError, ImportError),
    ],
)
def test_each_project_error_is_an_advgame_error_and_keeps_its_builtin_base(error, also):
    assert issubclass(error, AdvGameError) and issubclass(error, also)


def test_bad_input_found_during_the_run_is_one_line(tmp_path, capsys):
    cfg = tiny_config(tmp_path, data__heldout=8)  # every one of the 8 seeds held out: none left to train on
    assert run_training(cfg, str(tmp_path / "run")) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "data.heldout=8 leaves no harmful training seeds" in err


BUGS = [ValueError("a bug deep in the run"), KeyError("missing"), TypeError("bad call")]


@pytest.mark.parametrize("bug", BUGS)
def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch, bug):
    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(trainer, "train", broken)
    with pytest.raises(type(bug)):
        run_training(tiny_config(tmp_path), str(tmp_path / "run"))


def test_a_project_error_raised_anywhere_in_the_run_is_one_line(tmp_path, monkeypatch, capsys):
    message = "judge 'x' at http://127.0.0.1:1: connection refused"

    def unavailable(*args, **kwargs):
        raise JudgeUnavailable(message)

    monkeypatch.setattr(trainer, "train", unavailable)
    assert run_training(tiny_config(tmp_path), str(tmp_path / "run")) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == f"advgame train: {message}"


def test_a_game_built_from_another_config_is_a_programming_error(tmp_path):
    from tests.scripted import scripted_game

    cfg = tiny_config(tmp_path)
    game = scripted_game(cfg)
    with pytest.raises(ValueError, match="built from another config") as caught:
        trainer.train(cfg.model_copy(update={"seed": 1}), tmp_path / "run", game=game)
    assert not isinstance(caught.value, AdvGameError)  # not bad input: the CLI keeps its traceback
