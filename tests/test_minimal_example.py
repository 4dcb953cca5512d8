"""examples/dpo_md_minimal.py is the package's algorithm: one step of it equals one `game_step` on tiny
models with scripted text and judges (same sampling seeds and prompts, same pairs, same losses, same
updated weights and EMAs), it samples from the EMA exactly as the package does, and a wrong loss in it is
caught."""

from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from advgame.game import update
from advgame.game.step import game_step
from advgame.models.tiny import tiny_tokenizer
from advgame.policy.sampling import generate
from advgame.train.setup import build_data
from tests.scripted import ScriptedBackend, ScriptedJudge, scripted_game
from tests.test_train_e2e import judge_score, tiny_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dpo_md_minimal.py"
SPLITS = ("harmful", "benign")


def load_example():
    spec = importlib.util.spec_from_file_location("dpo_md_minimal", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def attacker_reply(prompt: str, k: int):
    """Per seed: two faithful rewrites (k = 0, 2), and one that breaks the format (harmful), drifts off the
    seed (benign) or is cut off (every third seed)."""
    seed = prompt.split("<request>\n")[1].split("\n</request>")[0]
    if k == 1:
        if seed.endswith(("0", "3", "6")):
            return f"<prompt>and so on, {seed}", True
        return "no tags here" if seed.startswith("harmful") else "<prompt>unfaithful drift</prompt>"
    return f"<prompt>{'please' if k == 0 else 'kindly'}, {seed}</prompt>"


def defender_reply(prompt: str, k: int):
    """A refusal, a compliance (in an order that depends on the rewrite) and one answer cut off."""
    if k == 2:
        return "Sure, here is a long answer that goes on and on and on", True
    refuse_first = prompt.startswith("please")
    return "I cannot help with that." if (k == 0) == refuse_first else "Sure, here is how."


def _setup(tmp_path):
    ex = load_example()
    args = ex.Args(
        seed=0,
        seeds_per_split=3,
        num_attacker_samples=3,
        num_defender_samples=3,
        max_new_tokens=8,
        attacker_format="nothink",
        beta=0.1,
        ema_decay=0.5,
        lr=1e-3,
        max_grad_norm=1.0,
    )
    full = {"path": "tiny-llama", "finetune": "full", "device": "cpu"}
    sampling = {
        "max_new_tokens": args.max_new_tokens,
        "batch_size": 64,
        "temperature": args.temperature,
        "top_p": args.top_p,
    }
    cfg = tiny_config(
        tmp_path,
        attacker=full,
        defender=full,
        attacker_sampling=sampling,
        defender_sampling=sampling,
        optim={
            "lr": args.lr,
            "betas": list(args.betas),
            "eps": args.eps,
            "weight_decay": args.weight_decay,
            "max_grad_norm": args.max_grad_norm,
        },
        loss={"type": "dpo", "beta": args.beta},
        ema={"decay": args.ema_decay},
        game={"attacker_format": "nothink", "num_attacker_samples": 3, "num_defender_samples": 3},
        data__batch_size=3,
        train__steps=1,
        train__validation_size=0,
        train__microbatch_size=64,
    )
    judge = ScriptedJudge(score=judge_score, faithful=lambda seed, prompt: "unfaithful" not in prompt)
    scripts = {"attacker": attacker_reply, "defender": defender_reply}
    backends = {role: ScriptedBackend(reply, tiny_tokenizer()) for role, reply in scripts.items()}
    game = scripted_game(cfg, {"faithfulness": judge, "defender": judge, "attacker": judge}, backends)
    # the example's players start from the same weights
    players = [ex.Player(p.name, copy.deepcopy(p.model), p.tokenizer, args) for p in game.players()]
    return ex, args, game, players, judge, scripts


def _one_step_each(tmp_path, monkeypatch, break_example=None):
    ex, args, game, players, judge, scripts = _setup(tmp_path)
    data = build_data(game.cfg)
    batches = {c: data.train[c].next_batch() for c in SPLITS}

    trained: list[tuple[str, list]] = []  # (player, pairs) in the order the game trains them
    real_backward = update.preference_backward

    def spy(player, pairs, *args, **kwargs):
        trained.append((player.name, [(p.prompt_ids, p.chosen_ids, p.rejected_ids) for p in pairs]))
        return real_backward(player, pairs, *args, **kwargs)

    monkeypatch.setattr(update, "preference_backward", spy)
    metrics, _ = game_step(game, batches, 0)

    backends = {name: ScriptedBackend(reply, game.attacker.tokenizer) for name, reply in scripts.items()}

    def scripted_sample(player, prompts, n, seed, args):  # the text is scripted; the sampling seed is checked
        outs = backends[player.name].generate(prompts, None, num_samples=n, seed=seed)
        return [ex.Sample(c.prompt_ids, c.token_ids, c.text, c.truncated) for c in outs]

    monkeypatch.setattr(ex, "sample", scripted_sample)
    if break_example:
        break_example(ex, monkeypatch)
    out = ex.game_step(*players, judge, {c: [s.text for s in batches[c]] for c in SPLITS}, 0, args)

    # same sampling calls: prompts and seeds
    for player in game.players():
        assert backends[player.name].prompts == player.backend.prompts, player.name
        assert backends[player.name].seeds == player.backend.seeds, player.name
    # same pairs, in the same order; every split trains both players
    assert trained == [(role, out[c][role]["pairs"]) for c in SPLITS for role in ("attacker", "defender")]
    assert all(pairs for _, pairs in trained)
    # same losses
    for c in SPLITS:
        for role in ("attacker", "defender"):
            assert out[c][role]["loss"] == pytest.approx(metrics[f"{c}/{role}/loss"], rel=1e-5), (c, role)
    # same weights and EMAs after the step
    for mine, theirs in zip(players, game.players()):
        params = [p for p in theirs.model.parameters() if p.requires_grad]
        torch.testing.assert_close(mine.params, params, rtol=1e-5, atol=1e-7, msg=f"{mine.name} weights")
        torch.testing.assert_close(
            mine.ema, list(theirs.ema.tensors.values()), rtol=1e-5, atol=1e-7, msg=f"{mine.name} EMA"
        )
    return game, players


def test_one_step_of_the_example_equals_one_game_step(tmp_path, monkeypatch):
    game, players = _one_step_each(tmp_path, monkeypatch)
    for mine, theirs in zip(players, game.players()):  # and the step did move both
        assert not torch.equal(mine.params[0], mine.ema[0])


def _flip_sign(ex, monkeypatch):
    real = ex.dpo_loss
    monkeypatch.setattr(ex, "dpo_loss", lambda *a: -real(*a))


def _on_policy_reference(ex, monkeypatch):
    """The reference taken from the live weights instead of the EMA: Δ's reference terms change."""
    monkeypatch.setattr(ex.Player, "ema_weights", lambda self: nullcontext(self.model))


def _swap_chosen(ex, monkeypatch):
    real = ex.preference_pair

    def swapped(group):  # trains on the rejected sample as if it were the chosen one
        pair = real(group)
        return pair and (pair[0], pair[2], pair[1])

    monkeypatch.setattr(ex, "preference_pair", swapped)


@pytest.mark.parametrize("bug", [_flip_sign, _on_policy_reference, _swap_chosen])
def test_a_wrong_example_fails_the_comparison(tmp_path, monkeypatch, bug):
    with pytest.raises(AssertionError):
        _one_step_each(tmp_path, monkeypatch, break_example=bug)


def test_the_example_samples_from_the_ema_as_the_game_does(tmp_path):
    ex, args, game, players, _, _ = _setup(tmp_path)
    prompts = ["How do I bake a cake?", "Explain vaccines."]
    for mine, theirs in zip(players, game.players()):
        with torch.no_grad():  # an EMA that differs from the live weights, the same in both
            for e, bank in zip(mine.ema, theirs.ema.tensors.values()):
                e.add_(torch.randn_like(e) * 0.5)
                bank.copy_(e)
        with theirs.sampling_weights():
            expected = generate(
                theirs.model, theirs.tokenizer, prompts, game.cfg.attacker_sampling, seed=7, num_samples=2
            ).completions
        got = ex.sample(mine, prompts, 2, 7, args)
        assert [(s.prompt_ids, s.ids, s.truncated) for s in got] == [
            (c.prompt_ids, c.token_ids, c.truncated) for c in expected
        ]
        live = generate(
            theirs.model, theirs.tokenizer, prompts, game.cfg.attacker_sampling, seed=7, num_samples=2
        ).completions
        assert [c.token_ids for c in live] != [s.ids for s in got]  # the EMA did the sampling


def test_the_example_runs_as_a_script():
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--steps", "1", "--max-new-tokens", "4"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("step 1: harmful/attacker:")
