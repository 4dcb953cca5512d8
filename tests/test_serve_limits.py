"""`advgame serve` under hostile input (issue 15): bounded prompts, generation that does not stall other
requests, prompt shutdown, 4xx instead of 500, quiet disconnects, no token in the access log, connection
limits and argument validation."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from advgame.backends.hf import HFBackend
from advgame.cli import main
from advgame.config.schema import SamplingConfig
from advgame.policy.sampling import Completion, generate
from advgame.serve.app import RedactQueryFilter, create_app
from advgame.serve.scheduler import GenerationCancelled, Scheduler

TOKEN = "s3cret-token-0123456789abcdef"
URL = "/v1/chat/completions"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class CountingBackend:
    name = "counting"

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, sampling, *, num_samples=1, seed=None, return_logprobs=False):
        self.calls += 1
        return [Completion([1], [2], "ok", False) for _ in range(num_samples)]


def body(content="hi", **extra):
    return {"messages": [{"role": "user", "content": content}], **extra}


# ------------------------------------------------------------------------------------ prompt bounds


def test_prompt_over_the_character_bound_is_400_before_any_tokenising_or_generation():
    backend = CountingBackend()
    client = TestClient(create_app(backend, model_name="m", token=TOKEN, max_prompt_tokens=100))
    r = client.post(URL, headers=AUTH, json=body("x" * 960_000))
    assert r.status_code == 400 and "prompt" in r.json()["error"]["message"]
    assert backend.calls == 0


def test_prompt_tokens_bounded_by_the_cap_and_the_models_context(tiny_llama):
    model, tokenizer = tiny_llama  # context 1024
    backend = HFBackend(model, tokenizer, name="tiny")
    client = TestClient(create_app(backend, model_name="tiny", token=TOKEN, max_prompt_tokens=100_000))
    assert client.app.state.limits.max_prompt_tokens == 1023  # the context wins over the configured cap
    t0 = time.monotonic()
    r = client.post(URL, headers=AUTH, json=body("word " * 3000, max_tokens=1))
    assert r.status_code == 400 and "at most 1023" in r.json()["error"]["message"], r.text
    assert time.monotonic() - t0 < 5
    r = client.post(URL, headers=AUTH, json=body("word " * 300, max_tokens=1000))
    assert r.status_code == 400 and "context" in r.json()["error"]["message"]
    r = client.post(URL, headers=AUTH, json=body("hello", max_tokens=3, temperature=0))
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 3
    capped = TestClient(create_app(backend, model_name="tiny", token=TOKEN, max_prompt_tokens=20))
    r = capped.post(URL, headers=AUTH, json=body("hello " * 40, max_tokens=1))
    assert r.status_code == 400 and "at most 20" in r.text


# ----------------------------------------------------------------------------- scheduling, shutdown


def _greedy(n):
    return SamplingConfig(temperature=0.0, max_new_tokens=n, batch_size=4)


def test_small_request_preempts_a_large_generation_and_both_answers_are_unchanged(tiny_llama):
    model, tokenizer = tiny_llama
    model.generation_config.eos_token_id = None  # never stop early: the large one must run long
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=300, batch_size=4)
    alone_large = generate(model, tokenizer, ["tell me a long story"], sampling, seed=5).texts
    alone_small = generate(
        model, tokenizer, ["hi"], SamplingConfig(temperature=1.0, max_new_tokens=4), seed=9
    ).texts
    sched = Scheduler()
    sched.attach(model)
    started, out = threading.Event(), {}

    def large():
        with sched.slot(small=False):
            started.set()
            out["large"] = generate(model, tokenizer, ["tell me a long story"], sampling, seed=5).texts

    thread = threading.Thread(target=large)
    thread.start()
    started.wait(5)
    time.sleep(0.05)
    with sched.slot(small=True):
        small = generate(
            model, tokenizer, ["hi"], SamplingConfig(temperature=1.0, max_new_tokens=4), seed=9
        ).texts
    assert thread.is_alive(), "the small request waited for the large one to finish"
    thread.join(60)
    sched.detach()
    assert sched.preemptions >= 1
    assert small == alone_small and out["large"] == alone_large  # seeded streams are not disturbed


def test_stop_cancels_the_running_generation_and_waiting_ones(tiny_llama):
    model, tokenizer = tiny_llama
    model.generation_config.eos_token_id = None
    sched = Scheduler()
    sched.attach(model)
    errors, started = [], threading.Event()

    def run(small):
        try:
            with sched.slot(small=small):
                started.set()
                generate(model, tokenizer, ["story"], _greedy(100_000 if not small else 2))
        except GenerationCancelled as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(False,))]
    threads[0].start()
    started.wait(5)
    threads.append(threading.Thread(target=run, args=(False,)))
    threads[1].start()
    t0 = time.monotonic()
    sched.stop()
    for t in threads:
        t.join(10)
    sched.detach()
    assert time.monotonic() - t0 < 5 and len(errors) == 2


def test_health_and_small_requests_answer_while_the_model_is_busy():
    release = threading.Event()

    class SlowBackend(CountingBackend):
        def generate(self, prompts, sampling, **kw):
            release.wait(10)
            return super().generate(prompts, sampling, **kw)

    client = TestClient(create_app(SlowBackend(), model_name="m", token=TOKEN, max_concurrent=1))
    with client:
        slow = threading.Thread(target=client.post, args=(URL,), kwargs={"headers": AUTH, "json": body()})
        slow.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        assert client.get("/health").status_code == 200
        assert time.monotonic() - t0 < 1
        busy = client.post(URL, headers=AUTH, json=body())  # over --max-concurrent: refused, not queued
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        release.set()
        slow.join(10)


# ------------------------------------------------------------------------------ 4xx, never 500


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(body(seed=2**64)).encode(),
        json.dumps(body(seed=-1)).encode(),
        b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
        b"[" * 5000 + b"]" * 5000,
        b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": ' + b"9" * 5000 + b"}",
        b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
        b"\xff\xfe\x00",
    ],
)
def test_hostile_bodies_are_4xx_not_500(raw):
    backend = CountingBackend()
    client = TestClient(create_app(backend, model_name="m", token=TOKEN), raise_server_exceptions=False)
    r = client.post(URL, content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
    assert backend.calls == 0


def test_an_error_in_generation_is_one_logged_line_and_a_500(caplog):
    class Broken(CountingBackend):
        def generate(self, *a, **k):
            raise RuntimeError("boom\nsecond line")

    client = TestClient(create_app(Broken(), model_name="m", token=TOKEN), raise_server_exceptions=False)
    with caplog.at_level(logging.INFO):
        r = client.post(URL, headers=AUTH, json=body())
    assert r.status_code == 500 and "Traceback" not in r.text
    assert not any(rec.exc_info for rec in caplog.records)
    assert "boom" in caplog.text and "second line" not in caplog.text


def test_a_client_that_disconnects_is_not_an_error(caplog):
    app = create_app(CountingBackend(), model_name="m", token=None)
    scope = {
        "type": "http",
        "method": "POST",
        "path": URL,
        "raw_path": URL.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 1),
        "client": ("127.0.0.1", 2),
        "root_path": "",
    }
    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    with caplog.at_level(logging.INFO):
        asyncio.run(app(scope, receive, send))  # raises nothing
    assert not any(rec.levelno >= logging.ERROR or rec.exc_info for rec in caplog.records)


def test_access_log_never_shows_a_query_string_token():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/v1/models?api_key={TOKEN}&x=1", "1.1", 401),
        None,
    )
    assert RedactQueryFilter().filter(record)
    assert TOKEN not in record.getMessage() and "/v1/models?<redacted>" in record.getMessage()


# ------------------------------------------------------------------------- connections, arguments


def test_idle_and_slow_header_connections_are_closed_and_capped():
    uvicorn = pytest.importorskip("uvicorn")
    import argparse

    from advgame.serve.cli import build_server

    app = create_app(CountingBackend(), model_name="m", token=TOKEN)
    args = argparse.Namespace(
        host="127.0.0.1",
        port=0,
        header_timeout=0.3,
        max_connections=4,
        keep_alive_timeout=1,
        shutdown_timeout=1,
    )
    server = build_server(uvicorn, app, args)
    server.config.log_level = "warning"
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        time.sleep(0.8)
        assert idle.recv(10) == b"" and slow.recv(10) == b""  # both closed by the server
        hold = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 503 " in extra.recv(200)  # over the connection cap
        for s in hold + [idle, slow, extra]:
            s.close()
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["serve", "tiny-llama", "--port", "99999"], "--port"),
        (["serve", "tiny-llama", "--max-request-bytes", "-5"], "--max-request-bytes"),
        (["serve", "tiny-llama", "--max-prompt-tokens", "0"], "--max-prompt-tokens"),
        (["serve", "tiny-llama", "--header-timeout", "nan"], "--header-timeout"),
    ],
)
def test_bad_serve_arguments_are_one_line_errors(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert needle in err[-1] and "Traceback" not in "\n".join(err)


def test_help_documents_the_limits(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for word in (
        "--max-prompt-tokens",
        "--max-concurrent",
        "--max-connections",
        "--header-timeout",
        "--body-timeout",
        "--shutdown-timeout",
        "docs/serve.md",
    ):
        assert word in out
