"""`advgame train`: run the game for `train.steps` steps with validation, logging and checkpoints.

A run directory holds:
    config.yaml          the resolved config (what `--resume` reads)
    metrics.jsonl        one line per logged step (training) and per validation (`valid/...`)
    rollouts.jsonl       every seed -> rewrite -> answers -> scores, and every validation answer
    checkpoints/step_N/  both players, both EMAs, optimisers, schedulers, RNG, data position
                         (safetensors + JSON)
    final/               the trained players in Hugging Face format (LoRA adapters or full weights)

`--resume RUN_DIR` restores the latest checkpoint and continues exactly: same seeds, same judgments
(for deterministic judges), same weights as a run that was never interrupted.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml

from advgame import distributed
from advgame.config.schema import RunConfig
from advgame.errors import ConfigError
from advgame.game.step import Game, derive_seed, game_step
from advgame.game.tree import tree_records
from advgame.game.validation import validate
from advgame.judges.base import JudgeStats
from advgame.judges.refusal import CLASSIFIER_ID as REFUSAL_CLASSIFIER_ID
from advgame.judges.refusal import is_refusal
from advgame.models.sharding import full, load_whole_, save_pretrained, shard_like
from advgame.train.checkpoint import (
    flatten_optimizer_state,
    has_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unflatten_optimizer_state,
)
from advgame.train.judge_health import FailureStreak, check_judges
from advgame.train.metrics import MetricsLogger, RolloutLog
from advgame.train.progress import TrainProgress
from advgame.train.setup import SeedData, build_data, build_game
from advgame.warm_start import apply_warm_start

log = logging.getLogger(__name__)


def run_dir_for(cfg: RunConfig) -> Path:
    return Path(cfg.output_dir) / cfg.name


def train(
    cfg: RunConfig,
    run_dir: Path | None = None,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    game: Game | None = None,
) -> Path:
    """Train; returns the run directory. `stop_after` ends the process's work after that many steps of
    this call (as if killed right after a checkpoint), which tests use to exercise resume.

    `game`: the players and judges, built by the caller from `cfg` (tests script their text and judges;
    any warm start is then the caller's); by default they are built from `cfg` after the warm start."""
    if game is not None and game.cfg != cfg:
        raise ValueError("train: `game` was built from another config than `cfg`")
    run_dir = Path(run_dir) if run_dir else run_dir_for(cfg)
    rank = distributed.init_from_env(cfg.train.dist_timeout_s)
    if cfg.data.batch_size < rank.world_size:
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} is the global batch: it must be at least the number of "
            f"processes ({rank.world_size})"
        )
    start = 0
    data = build_data(cfg)
    saved_cfg = (
        cfg  # what config.yaml records (and --resume reads): the warm start is found again in its cache
    )
    if game is None:
        cfg = apply_warm_start(cfg, {c: s.seeds for c, s in data.train.items()})
        game = build_game(cfg)
    for player in game.players():
        distributed.broadcast_player(player)
    if cfg.judges.check_at_start:
        check_judges(game)
    if (run_dir / "checkpoints").is_dir() and not has_checkpoint(run_dir):
        # killed before its first checkpoint was complete: nothing to continue, so start over (its logs go)
        log.warning("%s holds no complete checkpoint yet: starting the run from step 0", run_dir)
        resume = False
        if rank.is_main:
            for name in ("metrics.jsonl", "rollouts.jsonl"):
                (run_dir / name).unlink(missing_ok=True)
    if resume:
        start = restore(run_dir, game, data)
    elif rank.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(
            yaml.safe_dump(saved_cfg.model_dump(mode="json"), sort_keys=False)
        )
    logger = rollout_log = None
    if rank.is_main:
        logger = MetricsLogger(
            run_dir,
            tensorboard=cfg.logging.tensorboard,
            wandb=cfg.logging.wandb,
            config=cfg.model_dump(mode="json"),
            run_name=cfg.name,
            resume=resume,
        )
        rollout_log = RolloutLog(run_dir, cfg.logging.rollouts) if cfg.logging.rollouts != "off" else None
        if resume:
            logger.truncate_after(start)
            if rollout_log:
                rollout_log.truncate_after(start)

    def validation(step: int) -> dict:
        """The Defender on held-out seeds, on the main process only. Every process first brings the live
        weights into place (gathering a sharded Defender, syncing its engine: collectives), then the others
        skip the validation itself."""
        if not cfg.train.validation_size:
            return {}
        with game.defender.current_weights():
            if not rank.is_main:
                return {}
            metrics, records = run_validation(game, data, step)
        logger.log(step, {f"valid/{k}": v for k, v in metrics.items()})
        if rollout_log:
            rollout_log.write([{"step": step, "split": "valid", **r} for r in records])
        return metrics

    end = cfg.train.steps if stop_after is None else min(cfg.train.steps, start + stop_after)
    streak = FailureStreak(game, cfg.judges.stop_after_failing_steps)
    with TrainProgress(cfg.train.steps, start, enabled=cfg.logging.progress and rank.is_main) as progress:
        if start == 0:
            progress.validation(validation(0))
        for step in range(start, end):
            batches = {c: distributed.shard(data.train[c].next_batch(), rank) for c in ("harmful", "benign")}
            t0 = time.perf_counter()
            metrics, trees = game_step(game, batches, step)
            metrics["time/step"] = time.perf_counter() - t0
            done = step + 1
            streak.after_step(done)  # every judge call failing step after step stops the run
            if done % cfg.logging.every_n_steps == 0 or done == cfg.train.steps:
                failures = judge_failure_metrics(game)  # a collective: every process takes part
                if logger:
                    logger.log(done, {**metrics, **failures})
            if rollout_log:
                rollout_log.write(
                    [rec for split, tree in trees.items() for rec in tree_records(tree, done, split)]
                )
            progress.step(done, metrics)
            if done % cfg.train.validate_every_n_steps == 0 or done == cfg.train.steps:
                progress.validation(validation(done))
            if done % cfg.checkpoint.every_n_steps == 0 or done == cfg.train.steps or done == end:
                checkpoint(run_dir, game, data, done, cfg.checkpoint.keep_last)
    if end == cfg.train.steps:
        export_players(game, run_dir / "final")
    if logger:
        logger.close()
    distributed.barrier()
    return run_dir


def run_validation(game: Game, data: SeedData, step: int) -> tuple[dict[str, float], list[dict]]:
    cfg = game.cfg
    sampling = cfg.defender_sampling.model_copy(update={"temperature": cfg.train.validation_temperature})
    metrics, records = validate(
        game.defender,
        data.valid,
        sampling,
        is_refusal,
        judge=game.judges.defender,
        seed=derive_seed(cfg.seed, "validation", step),
    )
    return {**metrics, "classifier": REFUSAL_CLASSIFIER_ID}, records


def _judges(game: Game) -> dict:
    roles = {"faithfulness": game.judges.faithfulness, "defender": game.judges.defender.judge}
    if game.judges.attacker is not None:
        roles["attacker"] = game.judges.attacker.judge
    return roles


def _judge_state(judge) -> dict:
    state = {"stats": distributed.sum_counters(judge.stats.state_dict())}
    if hasattr(judge, "rng_state"):
        state["rng"] = judge.rng_state()
    return state


def judge_failure_metrics(game: Game) -> dict[str, float]:
    """Cumulative judge calls and failures per role, summed over processes (failures are excluded from
    training, never scored)."""
    out: dict[str, float] = {}
    for role, judge in _judges(game).items():
        stats = JudgeStats()
        stats.load_state_dict(distributed.sum_counters(judge.stats.state_dict()))
        for key, value in stats.as_dict().items():
            out[f"judge/{role}/{key}"] = value
    return out


# ----------------------------------------------------------------------------------------- checkpoints


def checkpoint(run_dir: Path, game: Game, data: SeedData, step: int, keep_last: int) -> Path | None:
    """Save the full state (written by the main process; every process must call it)."""
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    state: dict = {"step": step, "data": {c: s.state_dict() for c, s in data.train.items()}, "players": {}}
    for p in game.players():  # whole tensors (sharded ones gathered: a collective), so any world size resumes
        tensors[p.name] = _whole({n: t.detach() for n, t in p.model.named_parameters() if t.requires_grad})
        if p.ema is not None:
            tensors[f"{p.name}_ema"] = _whole(p.ema.state_dict())
        if p.initial is not None:
            tensors[f"{p.name}_initial"] = _whole(p.initial.state_dict())
        optim_tensors, optim_meta = flatten_optimizer_state(p.optimizer.state_dict())
        tensors[f"{p.name}_optim"] = _whole(optim_tensors)
        state["players"][p.name] = {
            "optimizer": optim_meta,
            "scheduler": p.scheduler.state_dict(),
            "ema_updates": p.ema.num_updates if p.ema else 0,
        }
    distributed.assert_in_sync(tensors)  # every process must hold the same players, EMAs and optimisers
    rng_tensors, rng_meta = rng_state()
    tensors["rng"] = rng_tensors
    state["rng"] = rng_meta
    state["judges"] = {role: _judge_state(j) for role, j in _judges(game).items()}  # collective
    path = save_checkpoint(run_dir, step, tensors, state, keep_last) if distributed.info().is_main else None
    distributed.barrier()
    return path


def _whole(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: full(t) for name, t in tensors.items()}


def restore(run_dir: Path, game: Game, data: SeedData) -> int:
    """Load the latest checkpoint of `run_dir` into the game; returns the step to continue from."""
    tensors, state, path = load_checkpoint(run_dir)
    for p in game.players():
        params = dict(p.model.named_parameters())
        with torch.no_grad():
            for name, value in tensors[p.name].items():
                load_whole_(params[name], value)
        if p.ema is not None:
            p.ema.load_state_dict(tensors[f"{p.name}_ema"])
            p.ema.num_updates = state["players"][p.name]["ema_updates"]
        if p.initial is not None:
            p.initial.load_state_dict(tensors[f"{p.name}_initial"])
        meta = state["players"][p.name]
        optim_state = unflatten_optimizer_state(tensors[f"{p.name}_optim"], meta["optimizer"])
        p.optimizer.load_state_dict(_shard_optimizer_state(optim_state, p.optimizer))
        p.scheduler.load_state_dict(meta["scheduler"])
    for category, stream_state in state["data"].items():
        data.train[category].load_state_dict(stream_state)
    set_rng_state(tensors["rng"], state["rng"])
    is_main = distributed.info().is_main
    for role, judge in _judges(game).items():
        saved = state["judges"][role]
        if is_main:  # counters are summed over processes when logged: the main process carries them
            judge.stats.load_state_dict(saved["stats"])
        if "rng" in saved:
            judge.set_rng_state(saved["rng"])
    log.info("resumed from %s (step %d)", path, state["step"])
    return int(state["step"])


def _shard_optimizer_state(state: dict, optimizer: torch.optim.Optimizer) -> dict:
    """A saved (whole-tensor) optimiser state laid out like the live parameters: each per-parameter tensor
    of a parameter's shape becomes that parameter's shard (no-op for unsharded parameters)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, per_param in state.get("state", {}).items():
        param = params[int(index)]
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape and value.dim() > 0:
                per_param[key] = shard_like(value, param)
    return state


def export_players(game: Game, out_dir: Path) -> None:
    """Save each trained player in Hugging Face format (peft adapter for LoRA, full weights otherwise), from
    the main process; every process calls it (a sharded player's tensors are gathered first)."""
    is_main = distributed.info().is_main
    for p in game.players():
        base = (game.cfg.defender if p.name == "defender" else game.cfg.attacker).path
        targets = [(out_dir / p.name, nullcontext())]
        if p.ema is not None:
            targets.append((out_dir / f"{p.name}_ema", p.ema.swapped_in(p.model)))
        for target, weights in targets:
            with weights:
                save_pretrained(p.model, target, write=is_main)
            if is_main:
                p.tokenizer.save_pretrained(target)
                _record_base_model(target, base)


def _record_base_model(adapter_dir: Path, base: str) -> None:
    """An adapter whose base was loaded from an alias or a temporary path records none: name the configured
    one (e.g. 'smollm2'), so that `advgame eval/redteam/serve` can load the adapter by itself."""
    config = adapter_dir / "adapter_config.json"
    if not config.is_file():
        return
    data = json.loads(config.read_text())
    if not data.get("base_model_name_or_path"):
        data["base_model_name_or_path"] = base
        config.write_text(json.dumps(data, indent=2))
