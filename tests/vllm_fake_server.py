"""A stand-in for `vllm serve` on 127.0.0.1 (stdlib http.server in a thread), for protocol and fail-fast
tests.

It speaks the parts of vLLM's HTTP API our server backend uses: /v1/completions with token-id prompts and
`return_token_ids`, /v1/models, /v1/load_lora_adapter, /v1/unload_lora_adapter, /pause, /collective_rpc,
/reset_prefix_cache and /resume. The completions come from a real (tiny) HF model, so the backend contract
tests can run on the server backend without vLLM. `hang_s` makes every request wait that long before answering
(a server that never answers); `fail` maps a path to an HTTP status to return.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import torch


def hf_completer(model, tokenizer):
    """A `complete(body) -> (token_ids, logprobs, finish_reason)` function sampling from an HF model.

    Requests are served one at a time (a lock): torch's global RNG is not thread-safe, and seeded
    sampling must not depend on how the server's threads interleave.
    """
    lock = threading.Lock()

    @torch.no_grad()
    def complete(body: dict):
        with lock:
            return _complete(body)

    def _complete(body: dict):
        ids = torch.tensor([body["prompt"]])
        greedy = body.get("temperature", 1.0) == 0
        stop = body.get("stop_token_ids") or [tokenizer.eos_token_id]
        with torch.random.fork_rng():
            if body.get("seed") is not None:
                torch.manual_seed(body["seed"])
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=not greedy,
                temperature=None if greedy else body["temperature"],
                top_p=None if greedy else body.get("top_p"),
                top_k=None,
                max_new_tokens=body["max_tokens"],
                eos_token_id=stop,
                pad_token_id=tokenizer.pad_token_id,
                return_dict_in_generate=True,
                output_logits=True,
            )
        row = out.sequences[0, ids.shape[1] :].tolist()
        end = next((j for j, t in enumerate(row) if t in stop), None)
        row = row if end is None else row[: end + 1]
        logits = torch.stack(out.logits, dim=1)[0, : len(row)].float()
        logps = (
            logits.gather(-1, torch.tensor(row).unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
        ).tolist()
        return row, logps, "length" if end is None else "stop"

    return complete


class FakeVLLMServer:
    """`with FakeVLLMServer(complete) as srv:` serves on `srv.base_url` ('http://127.0.0.1:PORT/v1')."""

    def __init__(self, complete=None, *, hang_s: float = 0.0, fail: dict[str, int] | None = None):
        self.complete = complete
        self.hang_s = hang_s
        self.fail = dict(fail or {})
        self.calls: list[tuple[str, dict]] = []
        self.adapters: dict[str, str] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _route(self, path: str, body: dict) -> tuple[int, dict]:
        self.calls.append((path, body))
        if path in self.fail:
            return self.fail[path], {"error": {"message": "injected failure"}}
        if path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": "base", "object": "model"}]}
        if path == "/v1/load_lora_adapter":
            self.adapters[body["lora_name"]] = body["lora_path"]
            return 200, {}
        if path == "/v1/unload_lora_adapter":
            self.adapters.pop(body["lora_name"], None)
            return 200, {}
        if path == "/collective_rpc":
            return 200, {"results": [True]}
        if path in ("/pause", "/resume", "/reset_prefix_cache"):
            return 200, {}
        if path == "/v1/completions" and self.complete is not None:
            token_ids, logps, finish = self.complete(body)
            choice = {
                "index": 0,
                "text": "",
                "finish_reason": finish,
                "token_ids": token_ids,
                "logprobs": {
                    "token_logprobs": logps,
                    "tokens": [f"token_id:{t}" for t in token_ids],
                    "text_offset": [0] * len(token_ids),
                    "top_logprobs": None,
                }
                if body.get("logprobs") is not None
                else None,
            }
            return 200, {
                "id": "cmpl-0",
                "object": "text_completion",
                "created": 0,
                "model": body["model"],
                "choices": [choice],
            }
        return 404, {"error": {"message": f"no route {path}"}}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                if server.hang_s:
                    time.sleep(server.hang_s)
                status, payload = server._route(self.path.split("?")[0], body)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            do_GET = do_POST = _serve

            def log_message(self, *args):  # keep test output clean
                pass

        return Handler
