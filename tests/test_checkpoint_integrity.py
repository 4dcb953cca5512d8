"""Checkpoint integrity (issue 15 items 2 and 6): flipped bytes in a checkpoint file are found on resume
(fall back to the previous intact checkpoint, or refuse, naming the file), and a kill during the first
checkpoint write leaves a run that can be started or resumed."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch

from advgame.train.checkpoint import CheckpointError, has_checkpoint, load_checkpoint, save_checkpoint


def _groups(scale: float) -> dict:
    return {
        "attacker": {"w": torch.arange(8192, dtype=torch.float32) * scale},
        "defender": {"b": torch.ones(4) * scale},
    }


def flip_4kb(path, offset_from_end: int = 8192) -> None:
    """Flip 4 KB in the data region of a safetensors file (its tensors are at the end)."""
    data = bytearray(path.read_bytes())
    start = len(data) - offset_from_end
    data[start : start + 4096] = bytes(b ^ 0xFF for b in data[start : start + 4096])
    path.write_bytes(bytes(data))


def test_manifest_records_a_sha256_per_file(tmp_path):
    path = save_checkpoint(tmp_path, 1, _groups(1.0), {"step": 1}, keep_last=2)
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["sha256"]) == {"attacker.safetensors", "defender.safetensors", "state.json"}


@pytest.mark.parametrize("victim", ["attacker.safetensors", "defender.safetensors", "state.json"])
def test_flipped_bytes_fall_back_to_the_previous_intact_checkpoint_naming_the_file(tmp_path, caplog, victim):
    save_checkpoint(tmp_path, 1, _groups(1.0), {"step": 1}, keep_last=3)
    newest = save_checkpoint(tmp_path, 2, _groups(2.0), {"step": 2}, keep_last=3)
    target = newest / victim
    if victim == "state.json":
        target.write_text(json.dumps({"step": 99}))  # still valid JSON: only the checksum can tell
    else:
        flip_4kb(target, offset_from_end=16 if victim == "defender.safetensors" else 8192)
    with caplog.at_level(logging.WARNING):
        tensors, state, used = load_checkpoint(tmp_path)
    assert used.name == "step_000001" and state == {"step": 1}
    assert torch.equal(tensors["attacker"]["w"], _groups(1.0)["attacker"]["w"])
    assert str(target) in caplog.text and "falling back" in caplog.text


def test_flipped_bytes_with_no_intact_checkpoint_are_refused_naming_the_file(tmp_path):
    path = save_checkpoint(tmp_path, 1, _groups(1.0), {"step": 1}, keep_last=1)
    flip_4kb(path / "attacker.safetensors")
    with pytest.raises(CheckpointError, match=r"attacker\.safetensors does not match its recorded sha256"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="attacker.safetensors"):
        load_checkpoint(path)  # a checkpoint dir named directly is never swapped for another


def test_a_checkpoint_without_checksums_still_loads(tmp_path):
    path = save_checkpoint(tmp_path, 1, _groups(1.0), {"step": 1}, keep_last=1)
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["sha256"]  # written by an older advgame
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert load_checkpoint(tmp_path)[1] == {"step": 1}


def test_resume_after_a_byte_flip_falls_back_in_training(tmp_path, caplog):
    from tests.test_train_e2e import run, tiny_config

    cfg = tiny_config(tmp_path)
    run_dir = tmp_path / "flipped"
    run(cfg, run_dir, stop_after=2)
    victim = run_dir / "checkpoints" / "step_000002" / "attacker.safetensors"
    flip_4kb(victim)
    cfg3 = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 3})})
    with caplog.at_level(logging.WARNING):
        run(cfg3, run_dir, resume=True)
    assert str(victim) in caplog.text and "step_000001" in caplog.text
    assert load_checkpoint(run_dir)[1]["step"] == 3


# --------------------------------------------------------------------- a kill in the first checkpoint


def _half_written_first_checkpoint(run_dir):
    tmp = run_dir / "checkpoints" / ".tmp-step_000001"
    tmp.mkdir(parents=True)
    (tmp / "attacker.safetensors").write_bytes(b"\0" * 100)  # killed mid-write
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 0, "valid/refusal_rate": 0.5}) + "\n")


@pytest.mark.parametrize("resume", [True, False])
def test_a_kill_during_the_first_checkpoint_is_no_dead_end(tmp_path, monkeypatch, capsys, resume):
    from advgame.train import trainer
    from advgame.train.run import run_training
    from tests.test_train_e2e import tiny_config

    cfg = tiny_config(tmp_path)
    run_dir = tmp_path / "killed"
    _half_written_first_checkpoint(run_dir)
    assert not has_checkpoint(run_dir)
    calls = []
    monkeypatch.setattr(trainer, "train", lambda cfg, target, resume: calls.append(resume) or target)
    assert run_training(cfg, str(run_dir), resume=resume) == 0
    assert calls == [resume]
    if resume:
        assert "no complete checkpoint" in capsys.readouterr().err


def test_resume_with_no_complete_checkpoint_starts_from_scratch(tmp_path):
    from tests.test_train_e2e import read_metrics, run, tiny_config

    cfg = tiny_config(tmp_path)
    run_dir = tmp_path / "killed"
    _half_written_first_checkpoint(run_dir)
    run(cfg, run_dir, resume=True)
    assert load_checkpoint(run_dir)[1]["step"] == 2
    assert not (run_dir / "checkpoints" / ".tmp-step_000001").exists()
    steps = [r["step"] for r in read_metrics(run_dir) if "valid/refusal_rate" in r or "step" in r]
    assert steps.count(0) == 1 or 0 not in steps  # the dead attempt's lines are gone
    assert os.path.isfile(run_dir / "config.yaml")
