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
    the bytes actually read (chunked uploads cannot dodge it);
  * malformed JSON or a body that breaks the schema -> 422;
  * nothing here logs headers or bodies, so the token never reaches a log.
Generation runs one request at a time (a lock; the model is not thread-safe), off the event loop.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from advgame.backends.base import GenerationBackend
from advgame.config.schema import SamplingConfig

log = logging.getLogger(__name__)


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
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields we do not use
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    seed: int | None = None
    stream: bool = False


def _error(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status, headers=headers)


def create_app(
    backend: GenerationBackend, *, model_name: str, token: str | None, max_request_bytes: int = 1_000_000,
    max_tokens_limit: int = 1024, max_n: int = 8,
) -> FastAPI:
    """The app serving `backend` as `model_name`; `token=None` disables auth (the CLI's --no-auth)."""
    app = FastAPI(title="advgame serve", docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()
    expected = None if token is None else token.encode("utf-8")

    def authorised(request: Request) -> bool:
        if expected is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8"), expected)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path.startswith("/v1") and not authorised(request):
            return _error(401, "missing or invalid bearer token", "authentication_error",
                          {"WWW-Authenticate": "Bearer"})
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _error(400, "bad Content-Length", "invalid_request_error")
            if int(length) > max_request_bytes:
                return _error(413, f"request body over {max_request_bytes} bytes", "invalid_request_error")
        return await call_next(request)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "advgame"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_request_bytes:
                return _error(413, f"request body over {max_request_bytes} bytes", "invalid_request_error")
        try:
            req = ChatRequest.model_validate(json.loads(body))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(422, "body is not valid JSON", "invalid_request_error")
        except ValidationError as err:
            fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors()[:5])
            return _error(422, f"invalid request: {fields}", "invalid_request_error")
        if req.stream:
            return _error(422, "streaming is not supported", "invalid_request_error")
        if req.n > max_n:
            return _error(422, f"n must be at most {max_n}", "invalid_request_error")
        cap = min(req.max_completion_tokens or req.max_tokens or max_tokens_limit, max_tokens_limit)
        sampling = SamplingConfig(temperature=req.temperature, top_p=req.top_p, max_new_tokens=cap,
                                  batch_size=max_n)
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]

        def generate():
            with lock:
                return backend.generate([messages], sampling, num_samples=req.n, seed=req.seed)

        t0 = time.monotonic()
        outs = await run_in_threadpool(generate)
        prompt_tokens = len(outs[0].prompt_ids) if outs else 0
        completion_tokens = sum(len(o.token_ids) for o in outs)
        log.info("chat completion: n=%d, %d prompt + %d completion tokens, %.2f s", req.n, prompt_tokens,
                 completion_tokens, time.monotonic() - t0)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model_name,
            "choices": [{"index": i, "message": {"role": "assistant", "content": o.text},
                         "finish_reason": "length" if o.truncated else "stop"} for i, o in enumerate(outs)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    return app
