"""Run logging: scalar metrics (JSONL, optionally TensorBoard and Weights & Biases) and the rollout log.

    run_dir/metrics.jsonl            {"step": N, "name": value, ...} per logged step, flushed per line
    run_dir/tensorboard/             TensorBoard event files (logging.tensorboard)
    run_dir/wandb/                   wandb's local files (logging.wandb); the run id is kept in
                                     run_dir/wandb_run_id so that a resumed run continues the same wandb run
    run_dir/rollouts.jsonl           one record per seed: seed -> rewrites -> answers -> scores
    run_dir/rollouts/part-N-K.parquet  the same, one Parquet file per write (logging.rollouts=parquet)

JSON has no NaN or infinity: such values are written as null. A run resumed from the checkpoint of step S
calls `truncate_after(S)` on both logs, so lines written after that checkpoint by the interrupted process
are not duplicated. No API key is ever read or passed here: wandb finds its own credentials.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any, Literal, Self

from advgame.extras import require

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
ROLLOUTS_FILE = "rollouts.jsonl"
WANDB_ID_FILE = "wandb_run_id"
_PART = re.compile(r"^part-(\d+)(?:-\d+)?\.parquet$")


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf floats as None and tensors / numpy values as Python ones, recursively."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "shape"):  # torch tensor or numpy array / scalar
        return json_safe(value.tolist())
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def _dumps(record: dict) -> str:
    return json.dumps(json_safe(record), ensure_ascii=False, allow_nan=False)


def truncate_jsonl(path: Path, step: int) -> int:
    """Drop the lines of `path` whose "step" is greater than `step` (and any unreadable partial line);
    rewrite it atomically. Returns the number of lines dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1  # a line cut short by the crash
            continue
        if (
            isinstance(record, dict)
            and isinstance(record.get("step"), (int, float))
            and record["step"] > step
        ):
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        tmp = path.with_name(f".tmp-{path.name}")
        tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)
        log.info("%s: dropped %d line(s) written after step %d", path, dropped, step)
    return dropped


class MetricsLogger:
    """Append metrics to run_dir/metrics.jsonl, mirrored to TensorBoard and/or wandb when asked."""

    def __init__(
        self,
        run_dir: Path | str,
        tensorboard: bool = False,
        wandb: bool = False,
        config: dict | None = None,
        run_name: str = "advgame",
        resume: bool = False,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        self._tb = self._wandb_run = None
        self._tb_writer_cls = None
        if tensorboard:
            require("tensorboard")
            from torch.utils.tensorboard import SummaryWriter

            self._tb_writer_cls = SummaryWriter
            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        if wandb:
            wandb_mod = require("wandb")
            self._wandb_run = wandb_mod.init(
                project="advgame",
                name=run_name,
                config=config,
                dir=str(self.run_dir),
                id=self._wandb_id(wandb_mod, resume),
                resume="allow",
            )
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def _wandb_id(self, wandb_mod: Any, resume: bool) -> str:
        """The wandb run id of this run directory: reused on resume, created otherwise."""
        id_file = self.run_dir / WANDB_ID_FILE
        if resume and id_file.is_file():
            return id_file.read_text(encoding="utf-8").strip()
        run_id = wandb_mod.util.generate_id()
        id_file.write_text(run_id + "\n", encoding="utf-8")
        return run_id

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append {"step": step, **metrics}; numbers also go to TensorBoard / wandb (strings: JSONL only)."""
        self._file.write(_dumps({"step": int(step), **metrics}) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, value in metrics.items():
                value = json_safe(value)
                if isinstance(value, numbers.Real) and not isinstance(value, bool):
                    self._tb.add_scalar(name, value, global_step=step)
        if self._wandb_run is not None:
            self._wandb_run.log(json_safe(metrics), step=int(step))

    def truncate_after(self, step: int) -> None:
        """Forget what was logged after `step` (resuming from the checkpoint of `step`)."""
        self._file.close()
        truncate_jsonl(self.path, step)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        if self._tb is not None:  # TensorBoard hides events after purge_step once a writer sets it
            self._tb.close()
            self._tb = self._tb_writer_cls(log_dir=str(self.run_dir / "tensorboard"), purge_step=step + 1)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RolloutLog:
    """Rollout records (dicts with a "step" field): run_dir/rollouts.jsonl, or Parquet parts."""

    def __init__(self, run_dir: Path | str, fmt: Literal["jsonl", "parquet"] = "jsonl"):
        if fmt not in ("jsonl", "parquet"):
            raise ValueError(f"rollout log format must be 'jsonl' or 'parquet', got {fmt!r}")
        self.run_dir = Path(run_dir)
        self.fmt = fmt
        if fmt == "parquet":
            require("pyarrow")
            self.dir = self.run_dir / "rollouts"
            self.dir.mkdir(parents=True, exist_ok=True)
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / ROLLOUTS_FILE

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        if self.fmt == "jsonl":
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("".join(_dumps(r) + "\n" for r in records))
        else:
            self._write_parquet(records)

    def _write_parquet(self, records: list[dict[str, Any]]) -> None:
        """One file per call, part-{step:06d}-{k}.parquet (k counts the writes of that step)."""
        pa = require("pyarrow")
        pq = require("pyarrow.parquet")
        step = int(records[0].get("step", 0))
        k = 0
        while (self.dir / f"part-{step:06d}-{k}.parquet").exists():
            k += 1
        try:
            table = pa.Table.from_pylist(records)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types in a column: store nested values as JSON
            table = pa.Table.from_pylist(
                [
                    {
                        key: v
                        if isinstance(v, (str, int, float, bool, type(None)))
                        else json.dumps(json_safe(v))
                        for key, v in r.items()
                    }
                    for r in records
                ]
            )
        target = self.dir / f"part-{step:06d}-{k}.parquet"
        tmp = self.dir / f".tmp-{target.name}"
        pq.write_table(table, tmp)
        os.replace(tmp, target)

    def truncate_after(self, step: int) -> None:
        """Drop the records written after `step` (JSONL lines, or Parquet parts of later steps)."""
        if self.fmt == "jsonl":
            truncate_jsonl(self.path, step)
            return
        for part in self.dir.iterdir():
            match = _PART.match(part.name)
            if (match and int(match[1]) > step) or part.name.startswith(".tmp-"):
                part.unlink()
