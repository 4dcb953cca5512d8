"""Checkpoints: safetensors + JSON layout, atomic writes under simulated crashes, rotation, exact
optimiser and RNG round trips, and clear errors for missing / incomplete / corrupt checkpoints."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest
import torch

import advgame.train.checkpoint as ckpt_mod
from advgame.train.checkpoint import (
    CheckpointError,
    flatten_optimizer_state,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unflatten_optimizer_state,
)


def groups(scale: float = 1.0) -> dict[str, dict[str, torch.Tensor]]:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) * scale
    return {
        "attacker": {"w": base, "w_t": base.t(), "w_alias": base, "row": base[1]},  # shared / non-contiguous
        "defender": {
            "b": torch.ones(2, dtype=torch.bfloat16) * scale,
            "n": torch.tensor(7),
            "empty": torch.zeros(0),
        },
        "nothing": {},
    }


def ckpt_dirs(run_dir):
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def test_round_trip_and_layout(tmp_path):
    state = {
        "step": 3,
        "data": {"harmful": {"epoch": 0, "position": 4}},
        "lr": [1e-6, 2.5e-7],
        "loss": float("nan"),
    }
    path = save_checkpoint(tmp_path, 3, groups(), state, keep_last=2)
    assert path == tmp_path / "checkpoints" / "step_000003"
    assert sorted(p.name for p in path.iterdir()) == [
        "attacker.safetensors",
        "defender.safetensors",
        "manifest.json",
        "nothing.safetensors",
        "state.json",
    ]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_000003"
    for where in (tmp_path, tmp_path / "checkpoints", path):
        tensors, loaded_state, loaded_path = load_checkpoint(where)
        assert loaded_path == path
        assert loaded_state["data"] == state["data"] and loaded_state["lr"] == state["lr"]
        expected = groups()
        assert tensors.keys() == expected.keys()
        for group, ts in expected.items():
            assert tensors[group].keys() == ts.keys()
            for key, t in ts.items():
                assert tensors[group][key].dtype == t.dtype and torch.equal(tensors[group][key], t)
    assert ckpt_dirs(tmp_path) == ["latest", "step_000003"]


def test_views_are_saved_and_left_untouched(tmp_path):
    t = torch.randn(4, 4)
    view = t[:, 1]  # non-contiguous view of t
    save_checkpoint(tmp_path, 1, {"g": {"t": t, "v": view}}, {}, keep_last=1)
    tensors, _, _ = load_checkpoint(tmp_path)
    assert torch.equal(tensors["g"]["v"], view) and not view.is_contiguous()


def test_keep_last_rotation(tmp_path):
    for step in range(1, 6):
        save_checkpoint(tmp_path, step * 10, groups(step), {"step": step * 10}, keep_last=2)
    assert ckpt_dirs(tmp_path) == ["latest", "step_000040", "step_000050"]
    tensors, state, path = load_checkpoint(tmp_path)
    assert state["step"] == 50 and path.name == "step_000050"
    assert torch.equal(tensors["attacker"]["w"], groups(5)["attacker"]["w"])


def test_resave_same_step_replaces_it(tmp_path):
    save_checkpoint(tmp_path, 5, groups(1), {"v": 1}, keep_last=3)
    save_checkpoint(tmp_path, 5, groups(2), {"v": 2}, keep_last=3)
    tensors, state, _ = load_checkpoint(tmp_path)
    assert state == {"v": 2} and torch.equal(tensors["attacker"]["w"], groups(2)["attacker"]["w"])
    assert ckpt_dirs(tmp_path) == ["latest", "step_000005"]


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch, error):
    save_checkpoint(tmp_path, 1, groups(1), {"step": 1}, keep_last=1)
    real_save = ckpt_mod.save_file
    calls = []

    def flaky_save(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 2:
            raise error("disk on fire")
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ckpt_mod, "save_file", flaky_save)
    expected = CheckpointError if error is Boom else KeyboardInterrupt
    with pytest.raises(expected, match="disk on fire"):
        save_checkpoint(tmp_path, 2, groups(2), {"step": 2}, keep_last=1)
    assert ckpt_dirs(tmp_path) == ["latest", "step_000001"]  # no step_2, no temp dir, nothing rotated
    tensors, state, _ = load_checkpoint(tmp_path)
    assert state == {"step": 1} and torch.equal(tensors["attacker"]["w"], groups(1)["attacker"]["w"])

    monkeypatch.setattr(ckpt_mod, "save_file", real_save)
    save_checkpoint(tmp_path, 2, groups(2), {"step": 2}, keep_last=1)
    assert load_checkpoint(tmp_path)[1] == {"step": 2}


def test_crash_before_pointer_update_and_killed_leftovers(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, groups(1), {"step": 1}, keep_last=3)
    real_write = ckpt_mod._write_text

    def fail_on_pointer(path, text):
        if path.name == ".tmp-latest":
            raise OSError("no space left on device")
        real_write(path, text)

    monkeypatch.setattr(ckpt_mod, "_write_text", fail_on_pointer)
    with pytest.raises(
        CheckpointError, match=r"could not write checkpoint .*step_000002: OSError: no space left"
    ):
        save_checkpoint(tmp_path, 2, groups(2), {"step": 2}, keep_last=3)
    assert load_checkpoint(tmp_path)[1] == {"step": 1}  # `latest` still names the previous checkpoint
    monkeypatch.setattr(ckpt_mod, "_write_text", real_write)

    killed = tmp_path / "checkpoints" / ".tmp-step_000003"  # a process killed mid-write leaves this
    killed.mkdir()
    (killed / "attacker.safetensors").write_bytes(b"partial")
    assert load_checkpoint(tmp_path)[1] == {"step": 1}
    save_checkpoint(tmp_path, 3, groups(3), {"step": 3}, keep_last=3)
    assert not killed.exists()
    assert load_checkpoint(tmp_path)[1] == {"step": 3}


def test_state_must_be_json(tmp_path):
    with pytest.raises(CheckpointError, match="step_000001 is not JSON-serialisable"):
        save_checkpoint(tmp_path, 1, groups(), {"bad": object()}, keep_last=1)
    with pytest.raises(CheckpointError, match="tensor group name 'a/b' is not a valid file name"):
        save_checkpoint(tmp_path, 1, {"a/b": {}}, {}, keep_last=1)
    with pytest.raises(CheckpointError, match=r"group\['x'\] is a int, not a tensor"):
        save_checkpoint(tmp_path, 1, {"group": {"x": 3}}, {}, keep_last=1)
    assert not (tmp_path / "checkpoints" / "step_000001").exists()


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*missing: the path does not exist"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match=r"no checkpoint found in .*expected .*latest or step_N"):
        load_checkpoint(tmp_path)

    path = save_checkpoint(tmp_path, 1, groups(), {"step": 1}, keep_last=1)
    (path / "defender.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(
        CheckpointError,
        match=r"step_000001 is corrupt: .*defender\.safetensors does not match its recorded sha256",
    ):
        load_checkpoint(tmp_path)
    (path / "defender.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"step_000001 is incomplete: defender\.safetensors is missing"):
        load_checkpoint(tmp_path)
    (path / "state.json").write_text("{not json")
    with pytest.raises(
        CheckpointError, match=r"step_000001 is corrupt: .*state\.json does not match its recorded sha256"
    ):
        load_checkpoint(path)
    (path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"step_000001 is incomplete: manifest\.json is missing"):
        load_checkpoint(path)

    (tmp_path / "checkpoints" / "latest").write_text("step_000099\n")
    with pytest.raises(CheckpointError, match=r"latest points at .*step_000099, which does not exist"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoints" / "latest").write_text("../../etc\n")
    with pytest.raises(CheckpointError, match="is not a checkpoint name"):
        load_checkpoint(tmp_path)


def test_missing_pointer_falls_back_to_newest(tmp_path, caplog):
    for step in (1, 2):
        save_checkpoint(tmp_path, step, groups(step), {"step": step}, keep_last=5)
    (tmp_path / "checkpoints" / "latest").unlink()
    with caplog.at_level(logging.WARNING, logger="advgame.train.checkpoint"):
        assert load_checkpoint(tmp_path)[1] == {"step": 2}
    assert "no 'latest' pointer" in caplog.text


# ------------------------------------------------------------------------------ optimiser round trip


def _model_and_optimizer(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    return model, opt


def _train(model, opt, steps: int, offset: int):
    for i in range(steps):
        g = torch.Generator().manual_seed(offset + i)
        x, y = torch.randn(5, 4, generator=g), torch.randn(5, 2, generator=g)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def test_optimizer_round_trip_is_bitwise_exact(tmp_path):
    model, opt = _model_and_optimizer()
    _train(model, opt, 3, offset=0)
    optim_tensors, optim_meta = flatten_optimizer_state(opt.state_dict())
    params = {n: p.detach() for n, p in model.named_parameters()}
    save_checkpoint(
        tmp_path, 3, {"model": params, "model_optim": optim_tensors}, {"optimizer": optim_meta}, keep_last=1
    )

    _train(model, opt, 2, offset=100)  # the uninterrupted run

    tensors, state, _ = load_checkpoint(tmp_path)
    fresh, fresh_opt = _model_and_optimizer(seed=123)
    with torch.no_grad():
        for n, p in fresh.named_parameters():
            p.copy_(tensors["model"][n])
    restored = unflatten_optimizer_state(tensors["model_optim"], state["optimizer"])
    fresh_opt.load_state_dict(restored)
    assert fresh_opt.param_groups[0]["betas"] == (0.9, 0.95)  # tuples survive JSON
    assert list(restored["state"]) == [0, 1, 2, 3]  # int keys survive JSON
    _train(fresh, fresh_opt, 2, offset=100)

    for (n, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    for key, value in opt.state_dict()["state"][0].items():
        assert torch.equal(value, fresh_opt.state_dict()["state"][0][key]), key


def test_optimizer_without_steps_round_trips():
    _, opt = _model_and_optimizer()
    tensors, meta = flatten_optimizer_state(opt.state_dict())
    assert tensors == {}
    meta = json.loads(json.dumps(meta))
    assert unflatten_optimizer_state(tensors, meta) == opt.state_dict()


# ------------------------------------------------------------------------------------ RNG round trip


def _draws():
    return torch.rand(3).tolist(), random.random(), np.random.rand(2).tolist(), random.gauss(0, 1)


def test_rng_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in `random`'s state
    tensors, meta = rng_state()
    assert tensors["torch_cpu"].dtype == torch.uint8
    save_checkpoint(tmp_path, 1, {"rng": tensors}, {"rng": meta}, keep_last=1)
    expected = _draws()

    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    assert _draws() != expected
    loaded, state, _ = load_checkpoint(tmp_path)
    set_rng_state(loaded["rng"], state["rng"])
    assert _draws() == expected


def test_rng_meta_is_plain_json():
    _, meta = rng_state()
    assert json.loads(json.dumps(meta, allow_nan=False)) == meta
