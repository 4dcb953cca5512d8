"""A timed, fail-fast weight channel to `vllm serve` replicas for full fine-tuning (no NCCL group to hang).

The trainer writes the new weights as safetensors into a directory every server can read (shared
filesystem), then, for each server in turn:

    POST /pause?mode=wait                        finish in-flight requests, hold new ones
    POST /collective_rpc {"method": "advgame_reload_weights", "args": [DIR], "timeout": T}
    POST /reset_prefix_cache                     no KV computed with the old weights is reused
    POST /resume

`advgame_reload_weights` (vllm_worker.py) is vLLM's own in-place reload,
`Worker.reload_weights(weights_path=)`, plus a fix for tied output heads; start the servers with
`--worker-extension-cls advgame.backends.vllm_worker.WeightSyncExtension` (advgame installed beside vLLM).
The /pause, /collective_rpc and /reset_prefix_cache routes exist when the server runs with
`VLLM_SERVER_DEV_MODE=1` (vLLM 0.32). Every request has a hard timeout; any failure (refused connection, HTTP
error, timeout) raises WeightSyncError naming the server, the step and the cause, after a best-effort /resume
so a server is never left paused. Servers already updated keep the new weights: the caller should stop, or
retry the whole push.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from advgame.backends.vllm_common import WeightSyncError

log = logging.getLogger(__name__)
WEIGHTS_FILE = "model.safetensors"
RELOAD_METHOD = "advgame_reload_weights"


def server_root(base_url: str) -> str:
    """'http://h:8000/v1' -> 'http://h:8000' (the dev and RL routes live at the root)."""
    url = base_url.rstrip("/")
    return url.removesuffix("/v1")


def post_json(
    url: str,
    path: str,
    body: dict | None,
    timeout_s: float,
    api_key: str = "EMPTY",
    params: dict | None = None,
    method: str = "POST",
) -> dict:
    """Send `body` as JSON to url+path; the JSON reply, or WeightSyncError.

    `timeout_s` bounds the connection and every read (the stdlib socket timeout), so a server that accepts
    the connection and never answers fails after `timeout_s`, not never.
    """
    query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
    request = urllib.request.Request(
        f"{url}{path}{query}",
        data=None if method == "GET" else json.dumps(body or {}).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            data = reply.read()
    except urllib.error.HTTPError as err:
        detail = err.read()[:200].decode(errors="replace")
        raise WeightSyncError(f"{url}{path}: HTTP {err.code}: {detail}") from err
    except TimeoutError as err:
        raise WeightSyncError(f"{url}{path}: no answer within {timeout_s:g} s") from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, (TimeoutError, socket.timeout)):
            raise WeightSyncError(f"{url}{path}: no answer within {timeout_s:g} s") from err
        raise WeightSyncError(f"{url}{path}: cannot connect ({err.reason})") from err
    except OSError as err:  # connection reset mid-reply, ...
        raise WeightSyncError(f"{url}{path}: {type(err).__name__}: {err}") from err
    log.debug("%s%s answered in %.2f s", url, path, time.perf_counter() - t0)
    try:
        return json.loads(data) if data else {}
    except ValueError:
        return {}


def save_weights(named_tensors: Iterable[tuple[str, torch.Tensor]], directory: str | Path) -> Path:
    """Write (HF name, tensor) pairs as DIR/model.safetensors atomically (tmp + rename); the directory.

    Tensors sharing storage (tied embeddings) are written once, under the first name given.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors, seen = {}, set()
    for name, t in named_tensors:
        if t.data_ptr() in seen:  # a tied weight (lm_head = embed_tokens): the engine ties it again
            continue
        seen.add(t.data_ptr())
        tensors[name] = t.detach().to("cpu").contiguous()
    tmp = directory / f".{WEIGHTS_FILE}.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, directory / WEIGHTS_FILE)
    return directory


def reload_one(base_url: str, weights_dir: str, timeout_s: float, api_key: str = "EMPTY") -> None:
    """Pause, reload from `weights_dir`, reset the prefix cache, resume one server; WeightSyncError on
    failure."""
    root = server_root(base_url)
    post_json(root, "/pause", None, timeout_s, api_key, params={"mode": "wait"})
    try:
        post_json(
            root,
            "/collective_rpc",
            {"method": RELOAD_METHOD, "args": [str(weights_dir)], "timeout": timeout_s},
            timeout_s,
            api_key,
        )
        post_json(root, "/reset_prefix_cache", None, timeout_s, api_key)
    finally:
        try:
            post_json(root, "/resume", None, timeout_s, api_key)
        except WeightSyncError as err:
            log.error("could not resume %s after a weight reload: %s", root, err)


def reload_all(base_urls: Sequence[str], weights_dir: str, timeout_s: float, api_key: str = "EMPTY") -> float:
    """Reload every server from `weights_dir` (see the module docstring); total seconds, or
    WeightSyncError."""
    t0 = time.perf_counter()
    for url in base_urls:
        reload_one(url, weights_dir, timeout_s, api_key)
    seconds = time.perf_counter() - t0
    log.info("reloaded weights from %s on %d server(s) in %.2f s", weights_dir, len(base_urls), seconds)
    return seconds
