"""OpenAIChatBackend (and an LLMJudge over it) against a scripted local OpenAI-compatible server.

The server runs on 127.0.0.1 in a thread; its behaviour per request is a function of the request count and
body: answer, fail with a status, stall past the client's timeout, or send a malformed body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from advgame.backends.base import GenerationBackend
from advgame.backends.openai_compat import OpenAIChatBackend
from advgame.config.schema import SamplingConfig
from advgame.judges.base import PairItem
from advgame.judges.llm import LLMJudge

SAMPLING = SamplingConfig(temperature=0.7, top_p=0.8, max_new_tokens=32)


class FakeServer:
    """`behave(k, body)` -> ("ok", text[, finish_reason]) | ("status", code) | ("sleep", s) | ("garbage",)."""

    def __init__(self, behave: Callable[[int, dict], tuple], delay_s: float = 0.0):
        self.behave, self.delay_s = behave, delay_s
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.times: list[float] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server.lock:
                    k = len(server.bodies)
                    server.bodies.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server.times.append(time.monotonic())
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay_s)
                    self._reply(server.behave(k, body), body)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _reply(self, action, body):
                kind = action[0]
                if kind == "sleep":
                    time.sleep(action[1])
                    action = ("ok", "late")
                if kind == "status":
                    self._send(action[1], b'{"error": {"message": "scripted failure"}}')
                elif kind == "garbage":
                    self._send(200, b'{"choices": [ {"message": oops')
                else:
                    finish = action[2] if len(action) > 2 else "stop"
                    self._send(
                        200,
                        json.dumps(
                            {
                                "id": "cmpl-1",
                                "object": "chat.completion",
                                "created": 0,
                                "model": body["model"],
                                "choices": [
                                    {
                                        "index": 0,
                                        "finish_reason": finish,
                                        "message": {"role": "assistant", "content": action[1]},
                                    }
                                ],
                            }
                        ).encode(),
                    )

            def _send(self, code, data):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda request, address: None
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(behave, delay_s=0.0):
        servers.append(FakeServer(behave, delay_s))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def backend(*servers, **kw) -> OpenAIChatBackend:
    kw = {"timeout_s": 0.5, "max_retries": 2, "backoff_s": 0.02, **kw}
    return OpenAIChatBackend([s.url for s in servers], "judge-model", api_key_env="ADVGAME_TEST_KEY", **kw)


def test_good_answers_and_request_fields(serve):
    def behave(k, body):
        return "ok", f"echo {body['messages'][-1]['content']}", "length" if body["seed"] == 13 else "stop"

    server = serve(behave)
    b = backend(server)
    assert isinstance(b, GenerationBackend)
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "two"}]
    outs = b.generate(["one", chat], SAMPLING, num_samples=2, seed=10)
    assert [o.text for o in outs] == ["echo one", "echo one", "echo two", "echo two"]
    assert [o.truncated for o in outs] == [False, False, False, True]
    assert all(o.error is None and o.token_ids == [] and o.prompt_ids == [] for o in outs)
    assert sorted(body["seed"] for body in server.bodies) == [10, 11, 12, 13]
    first = server.bodies[0]
    assert (first["n"], first["temperature"], first["top_p"], first["max_tokens"]) == (1, 0.7, 0.8, 32)
    assert first["model"] == "judge-model"
    assert any(body["messages"] == chat for body in server.bodies)
    assert b.generate([], SAMPLING) == []


def test_no_seed_field_when_unseeded(serve):
    server = serve(lambda k, body: ("ok", "x"))
    backend(server).generate(["p"], SAMPLING)
    assert "seed" not in server.bodies[0]


@pytest.mark.parametrize("code", [500, 503, 429])
def test_retryable_status_then_success(serve, code):
    server = serve(lambda k, body: ("status", code) if k == 0 else ("ok", "recovered"))
    outs = backend(server, backoff_s=0.05).generate(["p"], SAMPLING)
    assert outs[0].text == "recovered" and outs[0].error is None
    assert len(server.bodies) == 2
    assert server.times[1] - server.times[0] >= 0.05 * 0.5  # waited at least the smallest jittered backoff


def test_always_failing_gives_error_and_judge_counts_it(serve):
    server = serve(lambda k, body: ("status", 500))
    b = backend(server, max_retries=2)
    outs = b.generate(["p"], SAMPLING)
    assert outs[0].error == "http_500" and outs[0].text == ""
    assert len(server.bodies) == 3  # one try + two retries

    judge = LLMJudge(b, SAMPLING, seed=0)
    assert judge.score_pairs([PairItem("compliance", "q", "a", "b")] * 2) == [None, None]
    assert dict(judge.stats.failures) == {"http_500": 2} and judge.stats.calls == 2


def test_timeout_is_retried_then_reported(serve):
    server = serve(lambda k, body: ("sleep", 1.0))
    start = time.monotonic()
    outs = backend(server, timeout_s=0.2, max_retries=1).generate(["p"], SAMPLING)
    assert outs[0].error == "timeout"
    assert len(server.bodies) == 2
    assert time.monotonic() - start < 1.5


def test_slow_first_attempt_then_answer(serve):
    server = serve(lambda k, body: ("sleep", 1.0) if k == 0 else ("ok", "fast"))
    outs = backend(server, timeout_s=0.2).generate(["p"], SAMPLING)
    assert outs[0].text == "fast" and len(server.bodies) == 2


@pytest.mark.parametrize(
    ("action", "reason"),
    [(("garbage",), "bad_response"), (("status", 400), "http_400"), (("status", 404), "http_404")],
)
def test_non_retryable_failures(serve, action, reason):
    server = serve(lambda k, body: action)
    outs = backend(server).generate(["p"], SAMPLING)
    assert outs[0].error == reason and outs[0].text == ""
    assert len(server.bodies) == 1  # not retried


def test_connection_refused_is_an_error_not_an_exception():
    b = OpenAIChatBackend(["http://127.0.0.1:9/v1"], "m", timeout_s=0.3, max_retries=1, backoff_s=0.01)
    assert b.generate(["p"], SAMPLING)[0].error in ("connection", "timeout")


def test_round_robin_over_urls(serve):
    one, two = serve(lambda k, body: ("ok", "one")), serve(lambda k, body: ("ok", "two"))
    b = backend(one, two)
    outs = b.generate([f"p{i}" for i in range(8)], SAMPLING)
    assert len(one.bodies) == len(two.bodies) == 4
    assert [o.text for o in outs] == ["one", "two"] * 4
    b.generate(["a"], SAMPLING)
    b.generate(["b"], SAMPLING)  # the rotation carries across batches
    assert len(one.bodies) == len(two.bodies) == 5


def test_retry_moves_to_the_next_url(serve):
    dead, alive = serve(lambda k, body: ("status", 502)), serve(lambda k, body: ("ok", "alive"))
    outs = backend(dead, alive).generate(["p0", "p1", "p2", "p3"], SAMPLING)
    assert all(o.text == "alive" for o in outs)
    assert len(dead.bodies) == 2 and len(alive.bodies) == 4


def test_concurrency_limit(serve):
    server = serve(lambda k, body: ("ok", "x"), delay_s=0.1)
    outs = backend(server, max_concurrency=3).generate([f"p{i}" for i in range(12)], SAMPLING)
    assert len(outs) == 12 and all(o.error is None for o in outs)
    assert 2 <= server.max_in_flight <= 3  # concurrent, but never more than the limit


def test_generate_inside_a_running_event_loop(serve):
    server = serve(lambda k, body: ("ok", "from a loop"))
    b = backend(server)

    async def caller():
        return b.generate(["p"], SAMPLING)

    assert asyncio.run(caller())[0].text == "from a loop"


def test_api_key_never_logged_nor_shown(serve, monkeypatch, caplog):
    secret = "sk-test-5e3cr3t-value"
    monkeypatch.setenv("ADVGAME_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    server = serve(lambda k, body: ("status", 500) if k % 2 == 0 else ("ok", "fine"))
    b = backend(server, max_retries=0)
    outs = b.generate(["p0", "p1", "p2"], SAMPLING)
    assert sum(o.error is not None for o in outs) == 2  # something was logged
    assert server.headers[0].get("authorization") == f"Bearer {secret}"  # the key is used...
    assert secret not in repr(b) and secret not in str(b)  # ...but never shown
    assert caplog.records
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in repr(record.args)
    assert secret not in caplog.text


def test_missing_key_uses_placeholder(serve, monkeypatch):
    monkeypatch.delenv("ADVGAME_TEST_KEY", raising=False)
    server = serve(lambda k, body: ("ok", "x"))
    backend(server).generate(["p"], SAMPLING)
    assert server.headers[0].get("authorization") == "Bearer EMPTY"


def test_logprobs_are_not_available():
    b = OpenAIChatBackend(["http://127.0.0.1:9/v1"], "m")
    with pytest.raises(NotImplementedError):
        b.generate(["p"], SAMPLING, return_logprobs=True)
