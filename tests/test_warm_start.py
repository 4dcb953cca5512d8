"""The warm start: rows from training seeds only, a supervised pass that teaches its texts, a content-hash
cache, and the run wiring (the Defender's path points at the cached model; config.yaml keeps the original)."""

from __future__ import annotations

import torch
import yaml

from advgame.config.schema import ModelConfig, WarmStartConfig
from advgame.data.seeds import SeedPrompt
from advgame.models.tiny import tiny_model
from advgame.policy.chat import encode_completions, encode_prompts
from advgame.policy.logprobs import completion_logprobs
from advgame.policy.sampling import _stop_string_end
from advgame.train.setup import build_data
from advgame.warm_start import REFUSALS, cache_key, fit, warm_start_rows, warm_started
from tests.test_train_e2e import tiny_config


def seeds(category: str, n: int) -> list[SeedPrompt]:
    return [SeedPrompt(text=f"{category} request {i}", category=category, source="test") for i in range(n)]


def test_rows_take_a_share_of_harmful_seeds_and_every_benign_one():
    cfg = WarmStartConfig(refusal_fraction=0.5)
    refusals, benign = warm_start_rows(seeds("harmful", 10), seeds("benign", 6), cfg)
    assert len(refusals) == 5 and {t for _, t in refusals} <= set(REFUSALS)
    assert benign == [f"benign request {i}" for i in range(6)]
    again, _ = warm_start_rows(seeds("harmful", 10), seeds("benign", 6), cfg)
    assert again == refusals  # a fixed draw: the cache key is stable


def test_cache_key_changes_with_rows_and_settings():
    model = ModelConfig(path="tiny-llama")
    rows = warm_start_rows(seeds("harmful", 4), seeds("benign", 4), WarmStartConfig())
    key = cache_key(model, WarmStartConfig(), *rows)
    assert key == cache_key(model, WarmStartConfig(), *rows)
    assert key != cache_key(model, WarmStartConfig(steps=31), *rows)
    assert key != cache_key(model, WarmStartConfig(), rows[0][:1], rows[1])
    assert key != cache_key(ModelConfig(path="tiny-qwen2"), WarmStartConfig(), *rows)


def test_fit_teaches_the_refusal_text():
    model, tok = tiny_model("llama", seed=0)
    from advgame.models.loading import make_trainable

    model = make_trainable(model, "lora", WarmStartConfig().lora)
    prompt = encode_prompts(tok, ["harmful request 0"])[0]
    answer = encode_completions(tok, [REFUSALS[0]])[0]

    def logp() -> float:
        with torch.no_grad():
            return completion_logprobs(model, [prompt], [answer], tok.pad_token_id).sum.item()

    before = logp()
    losses = fit(
        model, tok.pad_token_id, [(prompt, answer)], WarmStartConfig(steps=8, batch_size=2, lr=1e-2), seed=0
    )
    assert losses[-1] < losses[0] and logp() > before + 5.0


def test_warm_started_model_is_cached_and_used_by_the_run(tmp_path, monkeypatch):
    cfg = tiny_config(
        tmp_path,
        warm_start={"enabled": True, "steps": 2, "batch_size": 2, "answer_tokens": 4},
        data={**tiny_config(tmp_path).data.model_dump(), "heldout": 2, "tune": 2},
    )
    data = build_data(cfg)
    train = {c: s.seeds for c, s in data.train.items()}
    assert not {s.text for s in data.valid["harmful"]} & {s.text for s in train["harmful"]}
    path = warm_started(cfg.defender, cfg.warm_start, train["harmful"], train["benign"], progress=False)
    assert (path / "config.json").is_file() and (path / "warm_start.json").is_file()
    stamp = (path / "config.json").stat().st_mtime_ns
    assert (
        warm_started(cfg.defender, cfg.warm_start, train["harmful"], train["benign"], progress=False) == path
    )
    assert (path / "config.json").stat().st_mtime_ns == stamp  # second call: from the cache

    from advgame.train import trainer

    seen = {}
    real_build_game = trainer.build_game
    monkeypatch.setattr(
        trainer, "build_game", lambda c, *a: seen.setdefault("cfg", c) and real_build_game(c, *a)
    )
    run_dir = trainer.train(
        cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 1})}), tmp_path / "run"
    )
    assert seen["cfg"].defender.path == str(path)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["defender"]["path"] == "tiny-llama"


def test_stop_string_end_finds_the_completing_token():
    _, tok = tiny_model("llama", seed=0)
    ids = tok("one line\nnext line", add_special_tokens=False)["input_ids"]
    end = _stop_string_end(tok, ids, ["\n"])
    assert end is not None and "\n" in tok.decode(ids[: end + 1]) and "\n" not in tok.decode(ids[:end])
    assert _stop_string_end(tok, ids, ["never"]) is None
