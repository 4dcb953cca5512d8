"""Run logging: metrics.jsonl (NaN as null, flushed per line, truncated on resume), the TensorBoard and
wandb mirrors (faked: neither is needed to run the tests), and the rollout log in JSONL and Parquet."""

from __future__ import annotations

import json
import sys
import types
from typing import ClassVar

import numpy as np
import pytest
import torch

from advgame.extras import MissingExtraError
from advgame.train.metrics import MetricsLogger, RolloutLog, json_safe, truncate_jsonl


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_log_writes_flushed_json_lines(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False, wandb=False, config=None, run_name="t", resume=False)
    logger.log(1, {"loss": 0.5, "pairs": 3, "nan": float("nan"), "inf": float("-inf"), "classifier": "rules"})
    logger.log(
        2, {"t": torch.tensor(1.5), "n": np.float32(0.25), "i": np.int64(4), "tn": torch.tensor(float("nan"))}
    )
    lines = read_jsonl(tmp_path / "metrics.jsonl")  # readable before close: flushed per line
    assert lines == [
        {"step": 1, "loss": 0.5, "pairs": 3, "nan": None, "inf": None, "classifier": "rules"},
        {"step": 2, "t": 1.5, "n": 0.25, "i": 4, "tn": None},
    ]
    assert "NaN" not in (tmp_path / "metrics.jsonl").read_text()
    logger.close()
    logger.close()  # idempotent


def test_json_safe_nested():
    assert json_safe({"a": [1.0, float("inf"), (2, float("nan"))], "b": {"c": np.array([1.0, np.nan])}}) == {
        "a": [1.0, None, [2, None]],
        "b": {"c": [1.0, None]},
    }


def test_truncate_after_on_resume(tmp_path):
    with MetricsLogger(tmp_path, False, False, None, "t", False) as logger:
        for step in range(6):
            logger.log(step, {"x": step})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "x"')  # a line cut short by the crash
    logger = MetricsLogger(tmp_path, False, False, None, "t", resume=True)
    logger.truncate_after(3)
    logger.log(4, {"x": 40})
    logger.close()
    assert [(r["step"], r["x"]) for r in read_jsonl(tmp_path / "metrics.jsonl")] == [
        (0, 0),
        (1, 1),
        (2, 2),
        (3, 3),
        (4, 40),
    ]


def test_truncate_jsonl_keeps_lines_without_step(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"note": "no step"}\n{"step": 9}\n')
    assert truncate_jsonl(path, 5) == 1
    assert read_jsonl(path) == [{"step": 1}, {"note": "no step"}]
    assert truncate_jsonl(path, 5) == 0
    assert truncate_jsonl(tmp_path / "absent.jsonl", 5) == 0


@pytest.mark.parametrize("extra", ["tensorboard", "wandb"])
def test_missing_tracker_raises_install_hint(tmp_path, monkeypatch, extra):
    monkeypatch.setitem(sys.modules, extra, None)
    with pytest.raises(
        MissingExtraError, match=rf"'{extra}' is not installed: pip install 'advgame\[track\]'"
    ):
        MetricsLogger(
            tmp_path,
            tensorboard=extra == "tensorboard",
            wandb=extra == "wandb",
            config={},
            run_name="t",
            resume=False,
        )


class FakeWriter:
    instances: ClassVar[list[FakeWriter]] = []

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        FakeWriter.instances.append(self)

    def add_scalar(self, name, value, global_step):
        self.scalars.append((name, value, global_step))

    def close(self):
        self.closed = True


def test_tensorboard_mirror(tmp_path, monkeypatch):
    FakeWriter.instances.clear()
    monkeypatch.setitem(sys.modules, "tensorboard", types.ModuleType("tensorboard"))
    fake_tb = types.ModuleType("torch.utils.tensorboard")
    fake_tb.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake_tb)
    logger = MetricsLogger(tmp_path, tensorboard=True, wandb=False, config=None, run_name="t", resume=True)
    writer = FakeWriter.instances[0]
    assert writer.log_dir == str(tmp_path / "tensorboard")
    logger.log(3, {"loss": 0.5, "name": "rules", "bad": float("nan"), "ok": True})
    assert writer.scalars == [("loss", 0.5, 3)]
    logger.truncate_after(2)
    assert writer.closed and FakeWriter.instances[1].purge_step == 3
    logger.close()
    assert FakeWriter.instances[1].closed


def _fake_wandb(monkeypatch):
    calls = {"init": [], "log": [], "finish": 0}

    class Run:
        def log(self, metrics, step):
            calls["log"].append((metrics, step))

        def finish(self):
            calls["finish"] += 1

    def init(**kwargs):
        calls["init"].append(kwargs)
        return Run()

    fake = types.ModuleType("wandb")
    fake.init = init
    fake.util = types.SimpleNamespace(generate_id=lambda: f"id{len(calls['init'])}")
    monkeypatch.setitem(sys.modules, "wandb", fake)
    return calls


def test_wandb_mirror_and_resume_id(tmp_path, monkeypatch):
    calls = _fake_wandb(monkeypatch)
    config = {"seed": 0}
    logger = MetricsLogger(
        tmp_path, tensorboard=False, wandb=True, config=config, run_name="run1", resume=False
    )
    logger.log(1, {"loss": float("nan"), "x": 2})
    logger.close()
    assert calls["init"][0] == {
        "project": "advgame",
        "name": "run1",
        "config": config,
        "dir": str(tmp_path),
        "id": "id0",
        "resume": "allow",
    }
    assert not any("key" in k.lower() for k in calls["init"][0])
    assert calls["log"] == [({"loss": None, "x": 2}, 1)] and calls["finish"] == 1
    MetricsLogger(
        tmp_path, tensorboard=False, wandb=True, config=config, run_name="run1", resume=True
    ).close()
    assert calls["init"][1]["id"] == "id0"  # a resumed run continues the same wandb run


# ---------------------------------------------------------------------------------------- rollouts


def test_rollout_jsonl_write_and_truncate(tmp_path):
    log = RolloutLog(tmp_path)
    log.write([])
    assert not (tmp_path / "rollouts.jsonl").exists()
    for step in (1, 2, 3):
        log.write(
            [
                {"step": step, "split": "harmful", "rewrites": [{"score": float("nan"), "answers": []}]},
                {"step": step, "split": "benign", "rewrites": []},
            ]
        )
    records = read_jsonl(tmp_path / "rollouts.jsonl")
    assert len(records) == 6 and records[0]["rewrites"][0]["score"] is None
    log.truncate_after(2)
    assert [r["step"] for r in read_jsonl(tmp_path / "rollouts.jsonl")] == [1, 1, 2, 2]


def test_rollout_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    log = RolloutLog(tmp_path, "parquet")
    record = {
        "step": 1,
        "split": "harmful",
        "seed": "s",
        "rewrites": [{"prompt": "x", "score": 7.0, "answers": []}],
    }
    log.write([record])
    log.write([{"step": 1, "split": "valid", "prompt": "p", "refused": True}])  # same step, another schema
    log.write([{**record, "step": 2}])
    names = sorted(p.name for p in (tmp_path / "rollouts").iterdir())
    assert names == ["part-000001-0.parquet", "part-000001-1.parquet", "part-000002-0.parquet"]
    assert pq.read_table(tmp_path / "rollouts" / names[0]).to_pylist() == [record]
    log.truncate_after(1)
    assert sorted(p.name for p in (tmp_path / "rollouts").iterdir()) == names[:2]


def test_rollout_parquet_mixed_types_fall_back_to_json(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    RolloutLog(tmp_path, "parquet").write([{"step": 0, "v": [1, 2]}, {"step": 0, "v": {"a": 1}}])
    rows = pq.read_table(tmp_path / "rollouts" / "part-000000-0.parquet").to_pylist()
    assert rows == [{"step": 0, "v": "[1, 2]"}, {"step": 0, "v": '{"a": 1}'}]


def test_rollout_format_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="must be 'jsonl' or 'parquet'"):
        RolloutLog(tmp_path, "csv")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtraError, match="'pyarrow' is not installed: pip install pyarrow"):
        RolloutLog(tmp_path, "parquet")
