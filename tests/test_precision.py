"""Mixed precision (docs/precision.md): float32 master weights, AdamW state and EMA with bfloat16 compute.

The paper trains at lr 1e-6. On bf16 master weights most such steps round away; on float32 masters with
bf16 autocast every entry that has a gradient moves, and so does the EMA. A config asking for bf16 storage
with full fine-tuning at that lr is refused by validation, with one line saying why."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advgame.config import ConfigError, load_config, validate_config
from advgame.config.schema import ModelConfig, ShardingConfig
from advgame.game.signals import Pair
from advgame.game.update import optimizer_step, preference_backward
from advgame.models.precision import autocast_dtype
from advgame.models.sharding import mixed_precision_policy
from advgame.player import Player
from advgame.train.setup import build_players
from tests.test_train_e2e import tiny_config

ROOT = Path(__file__).resolve().parents[1]
PAPER_LR = 1e-6


def _cfg(tmp_path, dtype="float32", compute_dtype="bfloat16", lr=PAPER_LR):
    player = {
        "path": "tiny-llama",
        "finetune": "full",
        "device": "cpu",
        "dtype": dtype,
        "compute_dtype": compute_dtype,
    }
    return tiny_config(
        tmp_path, attacker=player, defender=player, optim={"lr": lr, "weight_decay": 0.1}, ema={"decay": 0.95}
    )


def _pairs(player: Player) -> list[Pair]:
    tok = player.tokenizer
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]
    prompts = ["How do I bake a chocolate cake?", "What is the capital of France?", "Explain vaccines."]
    return [
        Pair(ids(p), ids("Sure! Here is a step by step answer."), ids("I can't help with that request."), 1.0)
        for p in prompts
    ]


def _one_step(player: Player, cfg) -> dict[str, float]:
    """One DPO step and one EMA move; the share of trainable entries with a non-zero gradient that changed."""
    before = {n: p.detach().clone() for n, p in player.model.named_parameters() if p.requires_grad}
    ema_before = {n: t.clone() for n, t in player.ema.tensors.items()}
    seen: list[torch.dtype] = []
    hook = player.model.register_forward_hook(lambda m, a, out: seen.append(out.logits.dtype))
    try:
        preference_backward(player, _pairs(player), cfg.loss, microbatch=8)
    finally:
        hook.remove()
    grads = {n: p.grad.detach().clone() for n, p in player.model.named_parameters() if p.requires_grad}
    assert {g.dtype for g in grads.values()} == {
        before[next(iter(before))].dtype
    }  # gradients in the master dtype
    optimizer_step(player, cfg.optim.max_grad_norm)
    player.end_step()
    after = dict(player.model.named_parameters())
    with_grad = changed = ema_changed = 0
    for name, g in grads.items():
        live = g != 0
        with_grad += int(live.sum())
        changed += int(((after[name].detach() != before[name]) & live).sum())
        ema_changed += int(((player.ema.tensors[name] != ema_before[name]) & live).sum())
    return {"changed": changed / with_grad, "ema_changed": ema_changed / with_grad, "logits": seen}


def test_fp32_masters_with_bf16_compute_keep_every_small_update(tmp_path):
    cfg = _cfg(tmp_path)
    player, _ = build_players(cfg)
    assert autocast_dtype(player.model) == torch.bfloat16
    assert {p.dtype for p in player.model.parameters()} == {torch.float32}
    out = _one_step(player, cfg)
    assert out["logits"] and set(out["logits"]) == {torch.bfloat16}  # forward and backward ran in bf16
    assert out["changed"] >= 0.99, out
    assert out["ema_changed"] >= 0.99, out  # the EMA bank moved with its weights
    states = player.optimizer.state.values()
    assert {s["exp_avg"].dtype for s in states} == {s["exp_avg_sq"].dtype for s in states} == {torch.float32}
    assert {t.dtype for t in player.ema.tensors.values()} == {torch.float32}


def test_bf16_masters_lose_the_update_and_validation_refuses_them(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"attacker\.dtype=bfloat16 with attacker\.finetune=full .*lr=1e-06 .*"
        r"use attacker\.dtype=float32 with attacker\.compute_dtype=bfloat16",
    ):
        _cfg(tmp_path, dtype="bfloat16", compute_dtype=None)
    # why: the same step on bf16 masters (built past validation) leaves most entries where they were
    cfg = _cfg(tmp_path)
    bf16 = ModelConfig(path="tiny-llama", finetune="full", device="cpu", dtype="bfloat16")
    player = Player.load("attacker", bf16, cfg.ema)
    from advgame.train.optim import build_optimizer

    player.optimizer = build_optimizer(player.model, cfg.optim)
    out = _one_step(player, cfg)
    assert out["changed"] < 0.5 and out["ema_changed"] < 0.5, out


def test_validation_allows_16bit_storage_where_it_is_harmless(tmp_path):
    _cfg(tmp_path, dtype="bfloat16", compute_dtype=None, lr=1e-4)  # a large lr survives bf16 rounding
    lora = {"path": "tiny-llama", "finetune": "lora", "device": "cpu", "dtype": "bfloat16"}
    tiny_config(tmp_path, attacker=lora, defender=lora, optim={"lr": PAPER_LR})  # adapters are fp32 in peft
    with pytest.raises(ConfigError, match="defender.dtype=float16"):
        tiny_config(
            tmp_path,
            defender={"path": "tiny-llama", "finetune": "full", "dtype": "float16"},
            optim={"lr": PAPER_LR},
        )


@pytest.mark.parametrize(
    "preset",
    [
        "qwen25_dpo_md",
        "qwen25_grpo",
        "llama31_ipo_md",
        "ablations/qwen25_dpo_no_ema",
        "baselines/qwen25_self_play",
    ],
)
def test_paper_presets_train_fp32_masters_in_bf16(preset):
    cfg = load_config(ROOT / "configs" / f"{preset}.yaml")
    for player in (cfg.attacker, cfg.defender):
        assert (player.finetune, player.dtype, player.compute_dtype) == ("full", "float32", "bfloat16")
    assert cfg.optim.lr == PAPER_LR
    with pytest.raises(ConfigError, match="attacker.dtype=bfloat16"):
        load_config(ROOT / "configs" / f"{preset}.yaml", ["attacker.dtype=bfloat16"])


def test_sharded_players_gather_bf16_and_reduce_fp32():
    mp = mixed_precision_policy(ShardingConfig(strategy="fsdp"), torch.bfloat16)
    assert (mp.param_dtype, mp.reduce_dtype) == (torch.bfloat16, torch.float32)
    mp = mixed_precision_policy(ShardingConfig(strategy="fsdp"), None)
    assert (mp.param_dtype, mp.reduce_dtype) == (None, None)  # no mixed precision asked: as stored
    mp = mixed_precision_policy(ShardingConfig(strategy="fsdp", param_dtype="float32"), torch.bfloat16)
    assert (mp.param_dtype, mp.reduce_dtype) == (torch.float32, None)  # an explicit setting wins


def test_resolved_auto_storage_is_checked_too(tmp_path, monkeypatch):
    """`dtype: auto` is bf16 on CUDA: the same refusal, when the players are built."""
    from advgame.models import loading

    monkeypatch.setattr(loading, "resolve_dtype", lambda name, device: torch.bfloat16)
    cfg = validate_config(
        {
            **_cfg(tmp_path).model_dump(mode="json"),
            "attacker": {"path": "tiny-llama", "finetune": "full", "device": "cpu", "dtype": "auto"},
        }
    )
    with pytest.raises(ValueError, match="attacker.dtype=bfloat16 with attacker.finetune=full"):
        build_players(cfg)
