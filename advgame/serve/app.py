"""The OpenAI-compatible chat-completions app behind `advgame serve` (FastAPI).

    POST /v1/chat/completions   OpenAI request/response shape (choices[i].message.content, finish_reason,
                                usage); temperature, top_p, max_tokens (clamped to the server's cap), n (at
                                most `max_n`) and seed are honoured; streaming is not supported (422)
    GET  /v1/models             the one served model
    GET  /health                liveness, no auth (says nothing about the model)

Security (a served Attacker is a dual-use artefact):
  * every /v1 route needs `Authorization: Bearer <token>` unless the app was built with token=None
    (`--no-auth`); the comparison is constant-time (hmac.compare_digest); missing or wrong -> 401;
  * a request body over `max_request_bytes` -> 413, checked on Content-Length before reading and again on
    the bytes actually read (chunked uploads cannot dodge it); a body not read within `body_timeout_s` -> 408;
  * malformed JSON (nested too deep, too-long numbers included), a body that breaks the schema, a seed
    outside [0, 2**63), or text that is not valid Unicode (a lone surrogate) -> 422;
  * a prompt over `max_prompt_tokens` tokens, or prompt + max_tokens over the model's context -> 400, found
    before the request waits for the model (a prompt over 32 characters per allowed token is refused
    without tokenising it);
  * at most `max_concurrent` completions admitted at once (running or waiting); more -> 503 + Retry-After;
  * nothing here logs headers, bodies or query strings, so the token never reaches a log; an error inside
    the app is logged as one line (no traceback), and a client that hangs up is not an error.

Generation runs off the event loop (a worker thread), one at a time (`scheduler.Scheduler`): a small
request preempts a large one between decoder layers, so /health and short completions are served while a
maximum-size request is in flight; a shutdown stops the generation in progress at its next layer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect

from advgame.backends.base import GenerationBackend
from advgame.config.schema import SamplingConfig
from advgame.serve.scheduler import GenerationCancelled, Scheduler

log = logging.getLogger(__name__)

CHARS_PER_TOKEN_BOUND = 32  # no tokenizer's token is longer: more characters than this per token is refused
MAX_SEED = 2**63 - 1


class ContentPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # OpenAI clients send fields we do not use
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    stream: bool = False


class RequestError(Exception):
    """A request the server refuses: (HTTP status, one-line message)."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", headers: dict | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers


def _error(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status, headers=headers)


def _hf_token_counter(backend) -> Callable[[list[dict]], int] | None:
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None:
        return None
    from advgame.policy.chat import encode_prompts

    return lambda messages: len(encode_prompts(tokenizer, [messages])[0])


def _context_length(backend) -> int | None:
    config = getattr(getattr(backend, "model", None), "config", None)
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


class Limits:
    """The server's limits (see `advgame serve --help` and docs/serve.md)."""

    def __init__(
        self,
        *,
        max_request_bytes: int,
        max_tokens_limit: int,
        max_n: int,
        max_prompt_tokens: int,
        context_length: int | None,
        max_concurrent: int,
        small_request_tokens: int,
        body_timeout_s: float,
    ):
        for name, value in (
            ("max_request_bytes", max_request_bytes),
            ("max_tokens_limit", max_tokens_limit),
            ("max_n", max_n),
            ("max_prompt_tokens", max_prompt_tokens),
            ("max_concurrent", max_concurrent),
            ("small_request_tokens", small_request_tokens),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not body_timeout_s > 0:
            raise ValueError(f"body_timeout_s must be positive, got {body_timeout_s!r}")
        self.max_request_bytes, self.max_tokens_limit, self.max_n = max_request_bytes, max_tokens_limit, max_n
        self.context_length = context_length
        self.max_prompt_tokens = (
            max_prompt_tokens if context_length is None else min(max_prompt_tokens, context_length - 1)
        )
        self.max_concurrent, self.small_request_tokens = max_concurrent, small_request_tokens
        self.body_timeout_s = body_timeout_s

    def as_dict(self) -> dict:
        return dict(vars(self))


def create_app(
    backend: GenerationBackend,
    *,
    model_name: str,
    token: str | None,
    max_request_bytes: int = 1_000_000,
    max_tokens_limit: int = 1024,
    max_n: int = 8,
    max_prompt_tokens: int = 4096,
    context_length: int | None = None,
    count_tokens: Callable[[list[dict]], int] | None = None,
    max_concurrent: int = 32,
    small_request_tokens: int = 256,
    body_timeout_s: float = 30.0,
    scheduler: Scheduler | None = None,
) -> Guard:
    """The app serving `backend` as `model_name`; `token=None` disables auth (the CLI's --no-auth).

    `count_tokens(messages)` and `context_length` default to the backend's tokenizer and model config when it
    has them (HFBackend). Stop `app.state.scheduler` on shutdown (the CLI does)."""
    limits = Limits(
        max_request_bytes=max_request_bytes,
        max_tokens_limit=max_tokens_limit,
        max_n=max_n,
        max_prompt_tokens=max_prompt_tokens,
        context_length=context_length or _context_length(backend),
        max_concurrent=max_concurrent,
        small_request_tokens=small_request_tokens,
        body_timeout_s=body_timeout_s,
    )
    count_tokens = count_tokens or _hf_token_counter(backend)
    scheduler = scheduler or Scheduler()
    model = getattr(backend, "model", None)
    if model is not None and hasattr(model, "register_forward_pre_hook"):
        scheduler.attach(model)
    app = FastAPI(title="advgame serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.scheduler, app.state.limits = scheduler, limits
    admitted = {"n": 0}
    counter_lock = threading.Lock()  # tokenizers are not guaranteed re-entrant from many threads

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "advgame"}],
        }

    async def read_body(request: Request) -> bytes:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_request_bytes:
                raise RequestError(413, f"request body over {limits.max_request_bytes} bytes")
        return bytes(body)

    def parse(body: bytes) -> ChatRequest:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):  # JSONDecodeError, too-long integers
            raise RequestError(422, "body is not valid JSON") from None
        except RecursionError:
            raise RequestError(422, "body is not valid JSON: nested too deeply") from None
        try:
            req = ChatRequest.model_validate(data)
        except ValidationError as err:
            fields = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors()[:5]
            )
            raise RequestError(422, f"invalid request: {fields}"[:500]) from None
        for i, m in enumerate(req.messages):
            try:
                m.text().encode("utf-8")
            except UnicodeEncodeError:
                raise RequestError(
                    422, f"invalid request: messages.{i}.content is not valid Unicode (a lone surrogate)"
                ) from None
        if req.stream:
            raise RequestError(422, "streaming is not supported")
        if req.n > limits.max_n:
            raise RequestError(422, f"n must be at most {limits.max_n}")
        return req

    def measure(messages: list[dict], requested: int | None) -> tuple[int | None, int]:
        """(prompt tokens or None when unknown, max new tokens); RequestError when over a limit."""
        chars = sum(len(m["content"]) for m in messages)
        if chars > limits.max_prompt_tokens * CHARS_PER_TOKEN_BOUND:
            raise RequestError(
                400,
                f"prompt of {chars} characters is over this server's limit of "
                f"{limits.max_prompt_tokens} prompt tokens",
            )
        cap = min(requested or limits.max_tokens_limit, limits.max_tokens_limit)
        if count_tokens is None:
            return None, cap
        with counter_lock:
            n = count_tokens(messages)
        if n > limits.max_prompt_tokens:
            raise RequestError(
                400, f"prompt is {n} tokens; this server accepts at most {limits.max_prompt_tokens}"
            )
        context = limits.context_length
        if context is not None and n + cap > context:
            if requested is not None:
                raise RequestError(
                    400,
                    f"prompt ({n} tokens) + max_tokens ({cap}) is over the model's context "
                    f"of {context} tokens",
                )
            cap = context - n  # no max_tokens asked: as many as fit
        return n, cap

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        try:
            try:
                body = await asyncio.wait_for(read_body(request), limits.body_timeout_s)
            except TimeoutError:
                raise RequestError(
                    408, f"request body not received within {limits.body_timeout_s:g} s"
                ) from None
            req = parse(body)
            if admitted["n"] >= limits.max_concurrent:
                raise RequestError(
                    503,
                    f"server busy: {limits.max_concurrent} completions in progress; retry",
                    "server_busy",
                    {"Retry-After": "1"},
                )
            admitted["n"] += 1
        except RequestError as err:
            return _error(err.status, err.message, err.kind, err.headers)
        except ClientDisconnect:
            return _error(400, "client disconnected", "invalid_request_error")
        try:
            return await complete(req)
        except RequestError as err:
            return _error(err.status, err.message, err.kind, err.headers)
        except GenerationCancelled:
            return _error(503, "the server is shutting down", "server_busy")
        finally:
            admitted["n"] -= 1

    async def complete(req: ChatRequest) -> dict:
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        requested = req.max_completion_tokens or req.max_tokens
        n_prompt, cap = await run_in_threadpool(measure, messages, requested)
        small = (n_prompt or 0) + req.n * cap <= limits.small_request_tokens
        sampling = SamplingConfig(
            temperature=req.temperature, top_p=req.top_p, max_new_tokens=cap, batch_size=limits.max_n
        )

        def generate():
            with scheduler.slot(small):
                return backend.generate([messages], sampling, num_samples=req.n, seed=req.seed)

        t0 = time.monotonic()
        outs = await run_in_threadpool(generate)
        prompt_tokens = len(outs[0].prompt_ids) if outs else 0
        completion_tokens = sum(len(o.token_ids) for o in outs)
        log.info(
            "chat completion: n=%d, %d prompt + %d completion tokens, %.2f s",
            req.n,
            prompt_tokens,
            completion_tokens,
            time.monotonic() - t0,
        )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": o.text},
                    "finish_reason": "length" if o.truncated else "stop",
                }
                for i, o in enumerate(outs)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    expected = None if token is None else token.encode("utf-8")
    return Guard(app, expected, limits.max_request_bytes)


# ------------------------------------------------------------------------------------ the ASGI guard


_DISCONNECTS = (ClientDisconnect, ConnectionError, asyncio.CancelledError)


class Guard:
    """Pure-ASGI front of the app: auth and Content-Length checks before the app runs, and no tracebacks: a
    client that hangs up ends quietly, any other error is one logged line and a 500 (if nothing was sent)."""

    def __init__(self, app: FastAPI, expected_token: bytes | None, max_request_bytes: int):
        self.app, self.expected, self.max_request_bytes = app, expected_token, max_request_bytes
        self.state = app.state

    def authorised(self, headers: dict[bytes, bytes]) -> bool:
        if self.expected is None:
            return True
        scheme, _, given = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode("latin-1"), self.expected
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        refused = None
        if scope["path"].startswith("/v1") and not self.authorised(headers):
            refused = _error(
                401, "missing or invalid bearer token", "authentication_error", {"WWW-Authenticate": "Bearer"}
            )
        else:
            length = headers.get(b"content-length")
            if length is not None:
                if not length.isdigit():
                    refused = _error(400, "bad Content-Length", "invalid_request_error")
                elif int(length) > self.max_request_bytes:
                    refused = _error(
                        413, f"request body over {self.max_request_bytes} bytes", "invalid_request_error"
                    )
        if refused is not None:
            return await refused(scope, receive, send)
        started = False

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except _DISCONNECTS as err:
            log.info(
                "client went away during %s %s (%s)", scope.get("method"), scope["path"], type(err).__name__
            )
        except Exception as err:  # noqa: BLE001 - one line, no traceback; the client gets a 500
            log.error(
                "error serving %s %s: %s: %s",
                scope.get("method"),
                scope["path"],
                type(err).__name__,
                str(err).splitlines()[0][:200] if str(err) else "",
            )
            if not started:
                try:
                    await _error(500, f"internal error ({type(err).__name__})", "server_error")(
                        scope, receive, send
                    )
                except _DISCONNECTS:
                    pass


def redact_query(path: str) -> str:
    """A logged request path without its query string (a token sent as ?api_key= must not be logged)."""
    head, sep, _ = path.partition("?")
    return head + ("?<redacted>" if sep else "")


class RedactQueryFilter(logging.Filter):
    """Strips query strings from uvicorn's access-log records (their third argument is the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True
