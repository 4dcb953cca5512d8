"""End to end on tiny random models: every preset family trains for 2 steps with scripted text and judges,
the bookkeeping matches the script, resume equals an uninterrupted run, and the CLI survives a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from advgame.config import load_config, validate_config
from advgame.models.tiny import tiny_tokenizer
from advgame.train.checkpoint import load_checkpoint
from advgame.train.trainer import train
from tests.scripted import ScriptedBackend, ScriptedJudge, scripted_game

ROOT = Path(__file__).resolve().parents[1]
B = 2  # seeds per split per step


def seed_files(tmp_path: Path) -> tuple[str, str]:
    harmful = tmp_path / "harmful.jsonl"
    benign = tmp_path / "benign.jsonl"
    harmful.write_text(
        "".join(
            json.dumps({"prompt": f"harmful request {i}", "category": "harmful"}) + "\n" for i in range(8)
        )
    )
    benign.write_text(
        "".join(json.dumps({"prompt": f"benign request {i}", "category": "benign"}) + "\n" for i in range(8))
    )
    return str(harmful), str(benign)


def tiny_config(tmp_path: Path, **sections) -> object:
    harmful, benign = seed_files(tmp_path)
    raw = {
        "name": "tiny",
        "output_dir": str(tmp_path / "runs"),
        "seed": 0,
        "attacker": {"path": "tiny-llama", "finetune": "full", "device": "cpu"},
        "defender": {"path": "tiny-llama", "finetune": "lora", "lora": {"r": 4, "alpha": 8}, "device": "cpu"},
        "attacker_sampling": {"max_new_tokens": 8, "batch_size": 8},
        "defender_sampling": {"max_new_tokens": 8, "batch_size": 8},
        "optim": {"lr": 1e-3},
        "loss": {"type": "dpo", "beta": 0.1},
        "ema": {"decay": 0.5},
        "game": {"attacker_format": "nothink"},
        "judges": {"default": {"kind": "heuristic"}},
        "data": {"harmful": harmful, "benign": benign, "batch_size": B, "heldout": 2},
        "logging": {"progress": False},
        "checkpoint": {"every_n_steps": 1, "keep_last": 5},
        "train": {"steps": 2, "validate_every_n_steps": 1, "validation_size": 2, "microbatch_size": 2},
    }
    for key, value in sections.items():
        section, _, field = key.partition("__")
        if field:
            raw.setdefault(section, {})[field] = value
        else:
            raw[section] = value
    return validate_config(raw)


def attacker_reply(prompt: str, k: int) -> str:
    """Sample 0 keeps the seed (faithful); sample 1 breaks the format (harmful) or drifts (benign)."""
    seed = prompt.split("<request>\n")[1].split("\n</request>")[0]
    if k == 0:
        return f"<prompt>please, {seed}</prompt>"
    return "no tags here" if seed.startswith("harmful") else "<prompt>unfaithful drift</prompt>"


def defender_reply(prompt: str, k: int) -> str:
    return "I cannot help with that." if k % 2 == 0 else "Sure, here is how."


def selfplay_reply(prompt: str, k: int) -> str:
    return attacker_reply(prompt, k) if "<request>" in prompt else defender_reply(prompt, k)


def judge_score(rubric: str, query: str, response: str) -> float:
    refuses = response.startswith("I cannot")
    return {
        "deflection": 8.0 if refuses else 2.0,
        "compliance": 1.0 if refuses else 9.0,
        "refusal": 9.0 if refuses else 1.0,
    }[rubric]


def scripted(cfg):
    tok = tiny_tokenizer()
    judge = ScriptedJudge(score=judge_score, faithful=lambda seed, prompt: "unfaithful" not in prompt)
    judges = {"faithfulness": judge, "defender": judge, "attacker": judge}
    if cfg.game.mode == "self_play":
        return judges, {"attacker": ScriptedBackend(selfplay_reply, tok)}
    return judges, {
        "attacker": ScriptedBackend(attacker_reply, tok),
        "defender": ScriptedBackend(defender_reply, tok),
    }


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_rows(run_dir: Path) -> list[dict]:
    return [r for r in read_metrics(run_dir) if "harmful/attacker/reward" in r]


def run(cfg, run_dir, **kw):
    judges, backends = scripted(cfg)
    return train(cfg, run_dir, game=scripted_game(cfg, judges, backends), **kw)


FAMILIES = {
    "dpo_md": {},
    "ipo_md": {"loss": {"type": "ipo", "beta": 0.1}},
    "grpo": {
        "loss": {"type": "grpo", "beta": 0.1, "is_cap": 2.0},
        "ema": {"decay": 0.5, "sample_from_ema": False, "ema_as_reference": False},
        "judges": {"default": {"kind": "heuristic", "mode": "pointwise"}},
    },
    "self_play": {"game__mode": "self_play"},
    "sequential": {"game__mode": "sequential", "game__phase_steps": 1},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_two_steps_with_known_bookkeeping(tmp_path, family):
    cfg = tiny_config(tmp_path, **FAMILIES[family])
    run_dir = run(cfg, tmp_path / "run")
    rows = train_rows(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    signal_key = "rollouts" if cfg.loss.type == "grpo" else "pairs"
    for split in ("harmful", "benign"):
        first = rows[0]
        # sample 1 of every seed is penalised (parse error or unfaithful): reward −1
        assert first[f"{split}/attacker/rate_ok"] == pytest.approx(0.5)
        assert first[f"{split}/defender/rate_ok"] == pytest.approx(
            1.0
        )  # only the faithful rewrite was answered
        if cfg.loss.type == "grpo":
            # every rewrite has a reward (−1 or judged); every answer is judged: the counts must be logged
            assert first[f"{split}/attacker/{signal_key}"] == 2 * B
            assert first[f"{split}/defender/{signal_key}"] == 2 * B
            assert 0 <= first[f"{split}/attacker/is_clipped_fraction"] <= 1
            assert first[f"{split}/defender/importance_weight"] > 0
        elif family == "sequential":
            assert rows[0][f"{split}/attacker/pairs"] == B and f"{split}/defender/pairs" not in rows[0]
            assert rows[1][f"{split}/defender/pairs"] == B and f"{split}/attacker/pairs" not in rows[1]
        else:
            assert first[f"{split}/attacker/pairs"] == B  # judged (≥ 0) beats −1, one pair per seed
            assert first[f"{split}/defender/pairs"] == B  # refusal vs compliance, one pair per rewrite
    # the attacker's valid rewrite is scored against the seed with the defender's best answer (optimistic):
    # harmful: the refusal (deflection 8) is best -> compliance 1; benign: the compliance (9) -> refusal 1
    assert rows[0]["harmful/attacker/judge_score"] == pytest.approx(1.0)
    assert rows[0]["benign/attacker/judge_score"] == pytest.approx(1.0)
    tensors, state, _ = load_checkpoint(run_dir)
    assert state["step"] == 2
    names = {"shared"} if family == "self_play" else {"attacker", "defender"}
    assert names <= set(tensors)
    assert (run_dir / "final").is_dir() and (run_dir / "rollouts.jsonl").is_file()


def test_sequential_freezes_the_other_player(tmp_path):
    cfg = tiny_config(tmp_path, game__mode="sequential", game__phase_steps=1)
    run_dir = run(cfg, tmp_path / "run")
    ck1, _, _ = load_checkpoint(run_dir / "checkpoints" / "step_000001")
    ck2, _, _ = load_checkpoint(run_dir / "checkpoints" / "step_000002")
    # step 0 is an attacker phase: the defender did not move, so its EMA still equals it
    assert _tensors_equal(ck1["defender"], ck1["defender_ema"])
    assert not _tensors_equal(ck1["attacker"], ck1["attacker_ema"])
    # step 1 is a defender phase: the attacker is frozen, the defender moves
    assert _tensors_equal(ck1["attacker"], ck2["attacker"])
    assert not _tensors_equal(ck1["defender"], ck2["defender"])


def _tensors_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_equals_uninterrupted_run(tmp_path):
    cfg = tiny_config(tmp_path, train__steps=4, checkpoint__every_n_steps=2)
    straight = run(cfg, tmp_path / "straight")
    interrupted = run(cfg, tmp_path / "resumed", stop_after=2)
    assert load_checkpoint(interrupted)[1]["step"] == 2
    resumed = run(cfg, interrupted, resume=True)
    a, sa, _ = load_checkpoint(straight)
    b, sb, _ = load_checkpoint(resumed)
    assert sa["step"] == sb["step"] == 4
    for name in a:
        if name != "rng":
            assert _tensors_equal(a[name], b[name]), name
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]
    assert strip(read_metrics(straight)) == strip(read_metrics(resumed))


def test_resume_with_real_sampling_equals_uninterrupted_run(tmp_path):
    """No scripting: the tiny models sample with their seeds and the heuristic judge judges, so a resume
    must restore the sampling noise, the judge's state and the weights exactly to match the straight run."""
    cfg = tiny_config(
        tmp_path,
        game__attacker_format="plain",
        train__steps=3,
        checkpoint__every_n_steps=1,
        train__validate_every_n_steps=2,
    )
    straight = train(cfg, tmp_path / "straight")
    interrupted = train(
        cfg, tmp_path / "resumed", stop_after=1
    )  # as if killed right after step 1's checkpoint
    assert load_checkpoint(interrupted)[1]["step"] == 1
    resumed = train(cfg, interrupted, resume=True)
    a, _, _ = load_checkpoint(straight)
    b, _, _ = load_checkpoint(resumed)
    for name in a:
        if name != "rng":
            assert _tensors_equal(a[name], b[name]), name
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]
    assert strip(read_metrics(straight)) == strip(read_metrics(resumed))
    texts = lambda d: [json.loads(line) for line in (d / "rollouts.jsonl").read_text().splitlines()]
    assert texts(straight) == texts(resumed)  # the same sampled rewrites and answers after the resume
    assert len({json.dumps(r, sort_keys=True) for r in texts(straight) if r.get("split") == "harmful"}) > 1


def test_real_generation_path_runs_on_tiny_models(tmp_path):
    """No scripting: tiny models sample, the heuristic judge judges. Checks the plumbing, not learning."""
    cfg = tiny_config(tmp_path, game__attacker_format="plain", train__steps=1)
    run_dir = train(cfg, tmp_path / "real")
    rows = train_rows(run_dir)
    assert len(rows) == 1 and rows[0]["step"] == 1
    assert any(k.startswith("valid/") for r in read_metrics(run_dir) for k in r)


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "advgame", "train", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_cli_train_killed_then_resumed(tmp_path):
    harmful, benign = seed_files(tmp_path)
    base = [
        str(ROOT / "configs" / "cpu_demo.yaml"),
        "attacker.path=tiny-llama",
        "defender.path=tiny-llama",
        f"data.harmful={harmful}",
        f"data.benign={benign}",
        "data.heldout=2",
        "data.tune=0",
        "train.validation_size=2",
        "warm_start.enabled=false",
        "attacker_sampling.max_new_tokens=6",
        "defender_sampling.max_new_tokens=6",
        "logging.progress=false",
        "checkpoint.every_n_steps=1",
        "train.steps=6",
        "train.validate_every_n_steps=100",
    ]
    run_dir = tmp_path / "cli-run"
    proc = _cli(*base, "--run-dir", str(run_dir))
    latest = run_dir / "checkpoints" / "latest"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if latest.is_file() and latest.read_text().strip() >= "step_000002":
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    done = _cli("--resume", str(run_dir))
    _out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    assert load_checkpoint(run_dir)[1]["step"] == 6
    steps = [r["step"] for r in train_rows(run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # no duplicated lines after the resume
    # the killed-and-resumed run (real sampling, heuristic judges) ends where a straight run of it ends
    straight = train(load_config(base[0], base[1:]), tmp_path / "straight")
    a, b = load_checkpoint(straight)[0], load_checkpoint(run_dir)[0]
    for name in a:
        if name != "rng":
            assert a[name].keys() == b[name].keys(), name
            for key in a[name]:
                torch.testing.assert_close(
                    a[name][key], b[name][key], rtol=1e-5, atol=1e-6, msg=f"{name}/{key}"
                )


def test_failing_llm_judge_is_counted_and_never_scored(tmp_path):
    """A real LLM judge (the tiny Defender judging through its own weights) writes gibberish: every
    judgment fails, is counted per role, and no pair is made from it."""
    judge = {"kind": "model", "model": "defender", "max_new_tokens": 4, "temperature": 0.0}
    cfg = tiny_config(tmp_path, judges={"default": judge}, train__steps=1)
    _, backends = scripted(cfg)
    run_dir = train(cfg, tmp_path / "run", game=scripted_game(cfg, backends=backends))  # configured judges
    row = train_rows(run_dir)[0]
    assert (
        row["judge/faithfulness/failures"] > 0
        and row["judge/faithfulness/failures"] == row["judge/faithfulness/calls"]
    )
    for split in ("harmful", "benign"):
        assert row[f"{split}/defender/pairs"] == 0
        # −1 (format) against "no reward" (judge failed) is not a comparison: no attacker pair either
        assert row[f"{split}/attacker/pairs"] == 0
        assert row[f"{split}/attacker/rate_faith_judge_failed"] > 0
