"""The transport shared by every OpenAI-compatible backend (chat endpoints, `vllm serve` replicas).

  pool = EndpointPool(["http://h1:8000/v1", "http://h2:8000/v1"], "OPENAI_API_KEY", name="judge")
  outs = pool.run([lambda client: ask(client, job) for job in jobs],
                  failure=lambda i, reason: Completion(...))

* requests go round-robin over `base_urls` (one AsyncOpenAI client per URL and batch); a retry moves on to
  the next URL, so a dead replica costs one attempt, not the sample; the position carries across batches;
* at most `max_concurrency` requests are in flight; each attempt has a hard `timeout_s` deadline;
* timeouts, connection errors, HTTP 429 and 5xx are retried `max_retries` times with exponential
  backoff and jitter (`backoff_s * 2**k * U[0.5, 1.5)`); other 4xx and malformed replies are not;
* request i that still fails becomes `failure(i, reason)`, reason one of 'timeout', 'connection',
  'http_<status>', 'bad_response', 'error': never raised mid-batch, counted in one warning per batch;
* the client library's own retries are off, so ours are the only ones;
* the API key is read once from `api_key_env` ('EMPTY' when unset, for local servers) and never logged
  or shown by `repr`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import openai

from advgame.policy.sampling import Completion

log = logging.getLogger(__name__)

Call = Callable[[openai.AsyncOpenAI], Awaitable[Completion]]  # one attempt of one request on one client


class BadResponse(Exception):
    """The server answered, but not with a usable completion."""


class EndpointPool:
    def __init__(
        self,
        base_urls: Sequence[str],
        api_key_env: str,
        *,
        max_concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        name: str = "endpoint",
    ):
        if not base_urls:
            raise ValueError(f"{name}: needs at least one base URL")
        if max_concurrency < 1 or timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ValueError("need max_concurrency >= 1, timeout_s > 0, max_retries >= 0, backoff_s >= 0")
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.name = name
        self._api_key = os.environ.get(api_key_env) or "EMPTY"
        self._cursor = 0
        self._jitter = random.Random()

    def __repr__(self) -> str:
        return (
            f"EndpointPool(base_urls={self.base_urls!r}, max_concurrency={self.max_concurrency}, "
            f"timeout_s={self.timeout_s}, max_retries={self.max_retries})"
        )

    def run(self, calls: Sequence[Call], failure: Callable[[int, str], Completion]) -> list[Completion]:
        """Every request's result, in order (see the module docstring)."""
        if not calls:
            return []
        start, self._cursor = self._cursor, self._cursor + len(calls)
        return run_sync(lambda: self._run(calls, failure, start))

    async def _run(self, calls: Sequence[Call], failure, start: int) -> list[Completion]:
        clients = [
            openai.AsyncOpenAI(base_url=url, api_key=self._api_key, max_retries=0, timeout=self.timeout_s)
            for url in self.base_urls
        ]
        gate = asyncio.Semaphore(self.max_concurrency)
        try:
            outs = await asyncio.gather(
                *(
                    self._attempts(clients, gate, call, partial(failure, i), start + i)
                    for i, call in enumerate(calls)
                )
            )
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        failed = Counter(o.error for o in outs if o.error)
        if failed:
            log.warning(
                "%s: %d of %d requests failed after retries: %s",
                self.name,
                failed.total(),
                len(outs),
                dict(failed),
            )
        return outs

    async def _attempts(self, clients, gate, call: Call, failure, slot: int) -> Completion:
        """One request with retries; `failure(reason)` when every attempt failed."""
        reason = "error"
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1) * (0.5 + self._jitter.random()))
            k = (slot + attempt) % len(clients)
            async with gate:
                try:
                    return await asyncio.wait_for(call(clients[k]), self.timeout_s)
                except Exception as err:  # noqa: BLE001 - every failure becomes a reason, none escapes it
                    reason, retry = classify_failure(err)
            log.debug(
                "request to %s failed (%s), attempt %d of %d",
                self.base_urls[k],
                reason,
                attempt + 1,
                self.max_retries + 1,
            )
            if not retry:
                break
        return failure(reason)


def classify_failure(err: BaseException) -> tuple[str, bool]:
    """(failure reason, worth retrying?) for an exception raised by one attempt."""
    if isinstance(err, (asyncio.TimeoutError, openai.APITimeoutError)):
        return "timeout", True
    if isinstance(err, openai.APIConnectionError):
        return "connection", True
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        return f"http_{status}", status == 429 or status >= 500
    if isinstance(err, (BadResponse, openai.APIResponseValidationError, ValueError)):
        return "bad_response", False  # includes JSON decoding errors (a ValueError)
    return "error", False


def run_sync(make_coro):
    """Run a coroutine to completion from sync code, even when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # a private loop on a helper thread
        return pool.submit(lambda: asyncio.run(make_coro())).result()
