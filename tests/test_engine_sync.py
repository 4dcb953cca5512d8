"""External engines (vLLM) get the player's sampling weights: the EMA once per step in the MD variants, the
live weights after each update on-policy; LoRA players as an adapter directory, full players as tensors."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from advgame.game.step import game_step
from advgame.train.setup import build_data
from tests.scripted import ScriptedBackend, scripted_game
from tests.test_train_e2e import attacker_reply, defender_reply, scripted, tiny_config


class FakeEngine(ScriptedBackend):
    """A scripted generator that, like a vLLM engine, keeps its own copy of the weights it was sent."""

    def __init__(self, reply, tokenizer):
        super().__init__(reply, tokenizer)
        self.received: list[dict[str, torch.Tensor]] = []
        self.asleep = False
        self.sleeps = 0

    def push_weights(self, named_tensors):
        self.received.append({k: v.detach().clone() for k, v in named_tensors})

    def load_adapter(self, path, name="adapter"):
        self.received.append(load_file(f"{path}/adapter_model.safetensors"))

    def sleep(self):
        self.asleep, self.sleeps = True, self.sleeps + 1

    def wake_up(self):
        self.asleep = False

    def generate(self, *args, **kwargs):
        assert not self.asleep, "generated while asleep"
        return super().generate(*args, **kwargs)


def _game(tmp_path, **sections):
    cfg = tiny_config(tmp_path, train__validation_size=0, **sections)
    judges, backends = scripted(cfg)
    tok = backends["attacker"].tokenizer
    engines = {"attacker": FakeEngine(attacker_reply, tok), "defender": FakeEngine(defender_reply, tok)}
    return scripted_game(cfg, judges, engines=engines), build_data(cfg), engines


def _matches(received: dict[str, torch.Tensor], bank: dict[str, torch.Tensor]) -> bool:
    """Engine tensors (HF names, or peft adapter names without the adapter) equal the bank's."""
    for name, value in bank.items():
        key = name.replace(".default.", ".")
        if key not in received or not torch.equal(received[key], value):
            return False
    return True


def test_md_engines_get_the_ema_once_per_step(tmp_path):
    game, data, engines = _game(tmp_path)
    for step in range(2):
        before = {p.name: {k: v.clone() for k, v in p.ema.tensors.items()} for p in game.players()}
        metrics, _ = game_step(game, {c: data.train[c].next_batch() for c in ("harmful", "benign")}, step)
        assert metrics["harmful/defender/pairs"] > 0
        for p in game.players():
            engine = engines[p.name]
            assert len(engine.received) == step + 1  # both splits sample the same EMA: one sync
            assert _matches(engine.received[-1], before[p.name]), p.name
            assert not _matches(engine.received[-1], dict(p.model.named_parameters()))  # not the live weights
            assert engine.sleeps >= 2  # released for the update of each split
            assert metrics[f"{p.name}/engine_syncs"] == 1
            assert metrics[f"time/{p.name}_engine_sync"] >= 0


def test_on_policy_engines_get_the_live_weights_after_each_update(tmp_path):
    game, data, engines = _game(
        tmp_path, ema={"decay": 0.5, "sample_from_ema": False, "ema_as_reference": False}
    )
    attacker = game.attacker
    live_before = {k: v.detach().clone() for k, v in attacker.model.named_parameters()}
    metrics, _ = game_step(game, {c: data.train[c].next_batch() for c in ("harmful", "benign")}, 0)
    received = engines["attacker"].received
    assert len(received) == 2  # harmful split (initial weights), benign split (after the harmful update)
    assert metrics["attacker/engine_syncs"] == 2
    assert _matches(received[0], live_before)
    assert not _matches(received[1], live_before)


def test_configured_vllm_server_engines_get_adapters_and_weights(tmp_path):
    """`engine.kind=vllm_server` end to end, against a fake `vllm serve` running a tiny model: the full
    fine-tuned Attacker's weights go through the reload protocol, the LoRA Defender's adapter by name."""
    from advgame.models.tiny import tiny_model
    from advgame.train.trainer import train
    from tests.vllm_fake_server import FakeVLLMServer, hf_completer

    model, tok = tiny_model("llama", seed=0)
    with (
        FakeVLLMServer(hf_completer(model.eval(), tok)) as att,
        FakeVLLMServer(hf_completer(model, tok)) as dfd,
    ):
        engine = {"kind": "vllm_server", "exchange_dir": str(tmp_path / "exchange"), "sync_timeout_s": 10}
        cfg = tiny_config(
            tmp_path,
            train__steps=1,
            train__validation_size=0,
            game__direct_seeds=True,  # random text: answer seeds
            attacker={
                "path": "tiny-llama",
                "finetune": "full",
                "device": "cpu",
                "engine": {**engine, "base_urls": [att.base_url]},
            },
            defender={
                "path": "tiny-llama",
                "finetune": "lora",
                "lora": {"r": 4, "alpha": 8},
                "device": "cpu",
                "engine": {**engine, "base_urls": [dfd.base_url]},
            },
        )
        judges, _ = scripted(cfg)
        train(cfg, tmp_path / "run", game=scripted_game(cfg, judges))
    att_paths = [p for p, _ in att.calls]
    assert att_paths[:4] == ["/pause", "/collective_rpc", "/reset_prefix_cache", "/resume"]
    weights_dir = att.calls[1][1]["args"][0]
    assert (tmp_path / "exchange") in Path(weights_dir).parents
    assert "/v1/completions" in att_paths
    assert list(dfd.adapters) == ["defender-v1"]  # one EMA version sampled in one step
    served = {body["model"] for path, body in dfd.calls if path == "/v1/completions"}
    assert served == {"defender-v1"}
