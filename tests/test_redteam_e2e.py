"""End to end on CPU: `advgame serve` a tiny model on 127.0.0.1, red-team it over HTTP with every attack at a
tiny budget, SIGKILL the run, resume it, and check the table, the JSONL and the server's logs.

The two subprocesses use one thread each: on a shared CPU, torch's threads spinning at barriers while
another process holds the cores made tiny-model generation about 6x slower."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from advgame.cli import main

TOKEN = "e2e-token-5f1d2c9a7b3e"
ATTACKS = ["advgame", "pair", "tap", "gcg"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not come up")


def _done_units(path) -> int:
    if not path.is_file():
        return 0
    return sum('"unit_done": true' in line for line in path.read_text().splitlines())


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    env = {**os.environ, "ADVGAME_SERVE_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "advgame",
            "serve",
            "tiny:llama",
            "--port",
            str(port),
            "--served-model-name",
            "tiny",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_healthy(port, proc)
        yield port, tmp_path / "server.log"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_serve_then_redteam_over_http_with_every_attack_and_resume(server, tmp_path, monkeypatch, capsys):
    port, server_log = server
    out = tmp_path / "run"
    argv = [
        "redteam",
        "--target-url",
        f"http://127.0.0.1:{port}/v1",
        "--target-model",
        "tiny",
        "--target-api-key-env",
        "ADVGAME_SERVE_TOKEN",
        "--attacks",
        ",".join(ATTACKS),
        "--behaviors",
        "builtin:demo_harmful",
        "--limit",
        "1",
        "--attacker",
        "tiny:llama",
        "--gcg-surrogate",
        "tiny:llama",
        "--samples",
        "2",
        "--pair-streams",
        "1",
        "--pair-iterations",
        "2",
        "--tap-branching",
        "2",
        "--tap-width",
        "1",
        "--tap-depth",
        "1",
        "--gcg-steps",
        "1",
        "--gcg-search-width",
        "8",
        "--gcg-topk",
        "8",
        "--gcg-suffix-len",
        "4",
        "--max-new-tokens",
        "8",
        "--attacker-max-new-tokens",
        "12",
        "--attacker-format",
        "plain",
        "--advgame-format",
        "plain",
        "--temperature",
        "1.0",
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "ADVGAME_SERVE_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "advgame", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    attempts = out / "attempts.jsonl"
    deadline = time.monotonic() + 120
    while _done_units(attempts) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _done_units(attempts)
    assert 1 <= done_before < len(ATTACKS), "the run should be killed part-way"

    monkeypatch.setenv("ADVGAME_SERVE_TOKEN", TOKEN)
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert f"{done_before} unit(s) already done" in " ".join(printed.err.split())
    for attack in ATTACKS:
        assert f"| {attack} |" in printed.out  # the Markdown table
    records = [json.loads(line) for line in attempts.read_text().splitlines()]
    units = [(r["attack"], r["behavior_id"]) for r in records if r["unit_done"]]
    assert sorted(units) == sorted(set(units)) and len(units) == len(ATTACKS)  # each unit exactly once
    summary = json.loads((out / "summary.json").read_text())
    assert [row["attack"] for row in summary["rows"]] == ATTACKS
    assert all(row["n"] == 1 for row in summary["rows"])
    assert summary["target"] == f"endpoint:tiny@http://127.0.0.1:{port}/v1"
    gcg = [r for r in records if r["attack"] == "gcg"]
    assert all(r["info"]["optimised_on"] == "tiny:llama" and r["queries"] == 1 for r in gcg)
    assert sum(row["queries"] for row in summary["rows"]) > 0
    text = server_log.read_text()
    assert "POST /v1/chat/completions" in text and TOKEN not in text
