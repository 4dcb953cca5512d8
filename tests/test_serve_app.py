"""`advgame serve`: auth (401), size limit (413), malformed requests (422), the OpenAI shape, no token in
logs."""

from __future__ import annotations

import json
import logging

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from advgame.cli import main
from advgame.policy.sampling import Completion
from advgame.serve.app import create_app
from advgame.serve.cli import is_loopback

TOKEN = "s3cret-token-0123456789abcdef"
URL = "/v1/chat/completions"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


class RecordingBackend:
    """Answers 'echo:<last user message>:<k>' and records the sampling settings and seeds it was given."""

    name = "recording"

    def __init__(self):
        self.calls = []

    def generate(self, prompts, sampling, *, num_samples=1, seed=None, return_logprobs=False):
        self.calls.append((prompts, sampling, num_samples, seed))
        text = prompts[0][-1]["content"]
        return [
            Completion(
                prompt_ids=[1, 2, 3], token_ids=[7] * (k + 1), text=f"echo:{text}:{k}", truncated=k == 1
            )
            for k in range(num_samples)
        ]


@pytest.fixture
def served():
    backend = RecordingBackend()
    app = create_app(
        backend, model_name="defender", token=TOKEN, max_request_bytes=2000, max_tokens_limit=64, max_n=4
    )
    return TestClient(app), backend


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def test_missing_or_wrong_token_is_401_and_never_reaches_the_model(served):
    client, backend = served
    for headers in (
        {},
        auth("wrong"),
        auth(TOKEN + "x"),
        {"Authorization": TOKEN},
        {"Authorization": "Basic " + TOKEN},
    ):
        r = client.post(URL, json=BODY, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/models").status_code == 401
    assert backend.calls == []
    assert client.get("/health").status_code == 200  # liveness needs no token


def test_oversized_body_is_413_by_header_and_by_bytes_read(served):
    client, backend = served
    big = {"messages": [{"role": "user", "content": "x" * 5000}]}
    assert client.post(URL, json=big, headers=auth()).status_code == 413

    def chunks():  # no Content-Length: a chunked upload must be cut off as it is read
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}]}'

    assert client.post(URL, content=chunks(), headers=auth()).status_code == 413
    assert backend.calls == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        json.dumps({"messages": []}).encode(),
        json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}).encode(),
        json.dumps({**BODY, "temperature": -1}).encode(),
        json.dumps({**BODY, "n": 0}).encode(),
        json.dumps({**BODY, "n": 5}).encode(),
        json.dumps({**BODY, "stream": True}).encode(),
    ],
)
def test_malformed_json_or_schema_is_422(served, body):
    client, backend = served
    r = client.post(URL, content=body, headers={**auth(), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert "error" in r.json()
    assert backend.calls == []


def test_openai_response_shape_and_parameters_honoured(served):
    client, backend = served
    r = client.post(
        URL,
        headers=auth(),
        json={
            **BODY,
            "temperature": 0.3,
            "top_p": 0.8,
            "max_tokens": 1000,
            "n": 2,
            "seed": 11,
            "user": "ignored",
        },
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "chat.completion" and out["model"] == "defender"
    assert [c["message"]["content"] for c in out["choices"]] == ["echo:hello:0", "echo:hello:1"]
    assert [c["finish_reason"] for c in out["choices"]] == ["stop", "length"]
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    ((prompts, sampling, n, seed),) = backend.calls
    assert (sampling.temperature, sampling.top_p, sampling.max_new_tokens, n, seed) == (0.3, 0.8, 64, 2, 11)
    assert prompts == [[{"role": "user", "content": "hello"}]]
    models = client.get("/v1/models", headers=auth()).json()
    assert [m["id"] for m in models["data"]] == ["defender"]


def test_no_auth_app_serves_without_a_token():
    client = TestClient(create_app(RecordingBackend(), model_name="m", token=None))
    assert client.post(URL, json=BODY).status_code == 200


def test_token_never_appears_in_logs(served, caplog, capsys):
    client, _ = served
    with caplog.at_level(logging.DEBUG):
        client.post(URL, json=BODY, headers=auth())
        client.post(URL, json=BODY, headers=auth("wrong-" + TOKEN))
        client.post(URL, content=b"{bad", headers=auth())
        client.get("/v1/models", headers=auth())
    captured = capsys.readouterr()
    assert caplog.records, "expected the server to log something"
    assert TOKEN not in caplog.text and TOKEN not in captured.out + captured.err


def test_cli_refuses_to_start_without_a_token(monkeypatch, capsys):
    monkeypatch.delenv("ADVGAME_SERVE_TOKEN", raising=False)
    assert main(["serve", "no/such/model"]) == 1
    err = capsys.readouterr().err
    assert "ADVGAME_SERVE_TOKEN" in err and "--no-auth" in err


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


def test_cli_warns_when_binding_a_non_loopback_host(monkeypatch, capsys):
    monkeypatch.setenv("ADVGAME_SERVE_TOKEN", TOKEN)
    assert (
        main(["serve", "./no/such/model", "--host", "0.0.0.0"]) == 1
    )  # fails at the model, after the warning
    err = capsys.readouterr().err
    assert "WARNING" in err and "0.0.0.0" in err and "cannot load" in err
    assert TOKEN not in err
