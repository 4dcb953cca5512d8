"""Build what a run needs from its config: the players, their optimisers, the judges, the seed data."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import transformers

from advgame import distributed
from advgame.backends.hf import HFBackend
from advgame.backends.weight_sync import EngineSync, build_engine
from advgame.config.schema import JudgeConfig, ModelConfig, RunConfig
from advgame.data.seeds import SeedPrompt, SeedStream, check_lengths, load_seeds, split_heldout
from advgame.ema import ParamBank
from advgame.errors import ConfigError
from advgame.game.scoring import RoleJudge
from advgame.game.step import Game, GameJudges
from advgame.judges.base import Judge, RoleView
from advgame.judges.factory import build_judge
from advgame.models.loading import load_model, peft_lora_config
from advgame.models.precision import check_resolved_storage, compute_dtype, enable_autocast
from advgame.models.sharding import shard_model
from advgame.models.shared_base import PLAYER_ADAPTERS, shared_base_views
from advgame.player import Player
from advgame.train.optim import build_optimizer, build_scheduler

log = logging.getLogger(__name__)


def build_players(cfg: RunConfig) -> tuple[Player, Player]:
    """Attacker and Defender; in self-play one shared Player (the `attacker` model) plays both roles."""
    transformers.utils.logging.disable_progress_bar()  # the run has its own progress bar
    if cfg.game.mode == "self_play":
        shared = _player("shared", cfg.attacker, cfg)
        return shared, shared
    if cfg.shared_base:
        return _shared_base_players(cfg)
    return _player("attacker", cfg.attacker, cfg), _player("defender", cfg.defender, cfg)


def _player(name: str, model_cfg: ModelConfig, cfg: RunConfig) -> Player:
    torch.manual_seed(cfg.seed)  # LoRA initialisation is random: make it a function of the run seed
    if cfg.train.sharding.strategy != "fsdp" or not distributed.active():
        player = Player.load(name, model_cfg, cfg.ema)
        enable_autocast(
            player.model, compute_dtype(model_cfg)
        )  # fp32 masters, bf16 compute (docs/precision.md)
        return _finish_player(player, cfg)
    model, tokenizer = load_model(model_cfg)
    distributed.broadcast_module(model)  # every process starts from rank 0's weights, then keeps 1/N of them
    shard_model(
        model, cfg.train.sharding, compute_dtype(model_cfg)
    )  # MixedPrecisionPolicy instead of autocast
    return _finish_player(Player(name=name, model=model, tokenizer=tokenizer, ema_cfg=cfg.ema), cfg)


def _shared_base_players(cfg: RunConfig) -> tuple[Player, Player]:
    """Both players as LoRA adapters of one frozen base model (one-GPU memory mode)."""
    base, tokenizer = load_model(cfg.attacker, trainable=False)
    torch.manual_seed(cfg.seed)
    views = shared_base_views(
        base,
        {"attacker": peft_lora_config(cfg.attacker.lora), "defender": peft_lora_config(cfg.defender.lora)},
    )
    enable_autocast(views["attacker"], compute_dtype(cfg.attacker))  # the shared base's forward serves both
    players = [Player(name=n, model=views[n], tokenizer=tokenizer, ema_cfg=cfg.ema) for n in PLAYER_ADAPTERS]
    return tuple(_finish_player(p, cfg) for p in players)


def _finish_player(player: Player, cfg: RunConfig) -> Player:
    """The player's generation engine (when not in-process HF), optimiser and schedule."""
    model_cfg = cfg.defender if player.name == "defender" else cfg.attacker
    storage = next(p for p in player.model.parameters() if p.requires_grad).dtype  # `dtype: auto` resolved
    check_resolved_storage(
        "defender" if player.name == "defender" else "attacker", model_cfg, cfg.optim.lr, storage
    )
    if model_cfg.engine.kind != "hf":
        player.backend = build_engine(model_cfg, player.tokenizer, player.name, cfg.seed)
        player.engine_sync = EngineSync(player.backend, player.name, model_cfg.engine.exchange_dir)
    if cfg.logging.diagnostics and player.initial is None:  # θ₀ for the log-ratio and fluency diagnostics
        player.initial = ParamBank(player.model)
    player.optimizer = build_optimizer(player.model, cfg.optim)
    player.scheduler = build_scheduler(player.optimizer, cfg.train.steps, cfg.optim)
    return player


def build_judges(cfg: RunConfig, attacker: Player, defender: Player) -> GameJudges:
    """The three configured judges (roles configured alike share one judge object)."""
    cache: dict[str, Judge] = {}

    def make(role: str) -> Judge:
        jcfg = cfg.judges.for_role(role)
        key = jcfg.model_dump_json()
        if key not in cache:
            cache[key] = build_judge(jcfg, _judge_backend(jcfg, attacker, defender), seed=cfg.seed)
        return cache[key]

    return game_judges(
        cfg, make("faithfulness"), make("defender"), make("attacker") if cfg.game.train_attacker else None
    )


def game_judges(cfg: RunConfig, faithfulness: Judge, defender: Judge, attacker: Judge | None) -> GameJudges:
    """The game's judges from built ones: each role sees its judge through a view with its own counters
    (even when roles share one judge), and scores in its configured mode. The attacker judge is used only
    when the Attacker trains."""
    if cfg.game.train_attacker and attacker is None:
        raise ValueError("game.train_attacker is on: the game needs an attacker judge")
    return GameJudges(
        faithfulness=RoleView(faithfulness, "faithfulness"),
        defender=RoleJudge(RoleView(defender, "defender"), cfg.judges.for_role("defender").mode),
        attacker=(
            RoleJudge(RoleView(attacker, "attacker"), cfg.judges.for_role("attacker").mode)
            if cfg.game.train_attacker
            else None
        ),
    )


def _judge_backend(jcfg: JudgeConfig, attacker: Player, defender: Player) -> HFBackend | None:
    if jcfg.kind != "model":
        return None
    if jcfg.model in ("attacker", "defender"):
        player = attacker if jcfg.model == "attacker" else defender
        return HFBackend(player.model, player.tokenizer, name=f"policy:{jcfg.model}")
    model, tokenizer = load_model(ModelConfig(path=jcfg.model, finetune="full", dtype="auto"))
    model.requires_grad_(False).eval()
    return HFBackend(model, tokenizer, name=jcfg.model)


@dataclass
class SeedData:
    train: dict[str, SeedStream]
    valid: dict[str, list[SeedPrompt]]


def build_data(cfg: RunConfig) -> SeedData:
    """Training streams per class, and validation seeds: held out of training unless given as files. With
    `data.tune`, a tuning set is held out too (of what remains), and `train.validate_on` picks which one
    validation answers."""
    train, valid = {}, {}
    budget = {"max_chars": cfg.data.max_seed_chars, "truncate": cfg.data.truncate_long_seeds}
    for category in ("harmful", "benign"):
        seeds = check_lengths(load_seeds(getattr(cfg.data, category), category), **budget)
        valid_spec = getattr(cfg.data, f"valid_{category}")
        heldout: list[SeedPrompt] = []
        if valid_spec:
            heldout = check_lengths(load_seeds(valid_spec, category), **budget)
        elif cfg.data.heldout:
            seeds, heldout = _hold_out(seeds, cfg.data.heldout, cfg.data.seed, category, "data.heldout")
        tune: list[SeedPrompt] = []
        if cfg.data.tune:
            seeds, tune = _hold_out(seeds, cfg.data.tune, cfg.data.seed + 1, category, "data.tune")
        valid[category] = (tune if cfg.train.validate_on == "tune" else heldout)[: cfg.train.validation_size]
        train[category] = SeedStream(seeds, cfg.data.batch_size, cfg.data.seed)
    return SeedData(train=train, valid=valid)


def _hold_out(seeds: list[SeedPrompt], n: int, seed: int, category: str, key: str):
    if n >= len(seeds):
        raise ConfigError(f"{key}={n} leaves no {category} training seeds ({len(seeds)} left)")
    return split_heldout(seeds, n, seed)


def build_game(cfg: RunConfig) -> Game:
    """The players and judges of a run, as configured."""
    attacker, defender = build_players(cfg)
    return Game(cfg=cfg, attacker=attacker, defender=defender, judges=build_judges(cfg, attacker, defender))
