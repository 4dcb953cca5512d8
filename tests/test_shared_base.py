"""One-GPU memory mode: both players as LoRA adapters of one frozen base (tiny models)."""

from __future__ import annotations

import pytest
import torch

from advgame.config import ConfigError
from advgame.models.shared_base import AdapterView, model_bytes
from advgame.train.checkpoint import load_checkpoint
from advgame.train.setup import build_players
from tests.test_train_e2e import run, tiny_config, train_rows

LORA = {"path": "tiny-llama", "finetune": "lora", "lora": {"r": 4, "alpha": 8}, "device": "cpu"}


def shared_config(tmp_path, **kw):
    return tiny_config(tmp_path, attacker=LORA, defender=LORA, shared_base=True, **kw)


def _loss(player) -> torch.Tensor:
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    return player.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float().pow(2).mean()


def test_players_share_one_base_and_own_disjoint_adapters(tmp_path):
    attacker, defender = build_players(shared_config(tmp_path))
    assert isinstance(attacker.model, AdapterView) and attacker.model.shared is defender.model.shared
    a_names = {n for n, _ in attacker.model.named_parameters()}
    d_names = {n for n, _ in defender.model.named_parameters()}
    assert a_names and d_names and not a_names & d_names
    assert all(".attacker." in n for n in a_names) and all(".defender." in n for n in d_names)
    assert attacker.ema.tensors.keys() == a_names and defender.ema.tensors.keys() == d_names

    separate = build_players(tiny_config(tmp_path, attacker=LORA, defender=LORA))
    shared_bytes = model_bytes([attacker.model, defender.model])
    separate_bytes = model_bytes([p.model for p in separate])
    base_bytes = sum(
        p.numel() * p.element_size() for p in separate[0].model.parameters() if not p.requires_grad
    )
    assert separate_bytes - shared_bytes == base_bytes  # the saving is exactly one copy of the base


@pytest.mark.parametrize("first, second", [(0, 1), (1, 0)])
def test_a_players_backward_and_step_never_touch_the_other_adapter(tmp_path, first, second):
    players = build_players(shared_config(tmp_path))
    mover, other = players[first], players[second]
    with torch.no_grad():  # LoRA B starts at zero: make both adapters live so the test can see leaks
        for p in (*mover.model.parameters(), *other.model.parameters()):
            p.add_(0.01 * torch.randn_like(p))
    before = {n: p.detach().clone() for n, p in other.model.named_parameters()}
    _loss(mover).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mover.model.parameters())
    assert all(p.grad is None for p in other.model.parameters())
    mover.optimizer.step()
    for n, p in other.model.named_parameters():
        assert torch.equal(p, before[n]), n
    # each player computes with its own adapter, whichever ran last
    out_other = _loss(other).item()
    _loss(mover)
    assert _loss(other).item() == out_other


def test_shared_base_game_trains_and_exports_each_adapter(tmp_path):
    cfg = shared_config(tmp_path)
    run_dir = run(cfg, tmp_path / "run")
    assert train_rows(run_dir)[-1]["harmful/defender/pairs"] > 0
    tensors, _, _ = load_checkpoint(run_dir)
    assert all(".attacker." in n for n in tensors["attacker"]) and all(
        ".defender." in n for n in tensors["defender"]
    )
    for name in ("attacker", "defender", "attacker_ema", "defender_ema"):
        assert (run_dir / "final" / name / "adapter_model.safetensors").is_file(), name
    # the export names its base, so eval / redteam / serve load it by itself
    from advgame.models.inference import load_chat_model

    model, _ = load_chat_model(str(run_dir), device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM"


def test_shared_base_needs_lora_players_on_the_same_base(tmp_path):
    with pytest.raises(ConfigError, match="attacker.finetune='lora'"):
        tiny_config(tmp_path, defender=LORA, shared_base=True)
    with pytest.raises(ConfigError, match="same path"):
        tiny_config(tmp_path, attacker=LORA, defender={**LORA, "path": "tiny-qwen2"}, shared_base=True)
