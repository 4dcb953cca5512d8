"""A GenerationBackend over OpenAI-compatible chat endpoints (vLLM, SGLang, llama.cpp server, OpenAI...).

Text only: completions carry no token ids and no log-probs; `truncated` means finish_reason == "length".

    backend = OpenAIChatBackend(["http://h1:8000/v1", "http://h2:8000/v1"], model="Qwen/Qwen2.5-32B-Instruct")
    outs = backend.generate(prompts, SamplingConfig(temperature=0.6, max_new_tokens=1024), seed=0)

Behaviour:
  * requests go round-robin over `base_urls` (one AsyncOpenAI client per URL and batch); a retry moves on to
    the next URL, so a dead replica costs one attempt, not the sample;
  * at most `max_concurrency` requests are in flight; each attempt has a hard `timeout_s` deadline;
  * timeouts, connection errors, HTTP 429 and 5xx are retried `max_retries` times with exponential
    backoff and jitter (`backoff_s * 2**k * U[0.5, 1.5)`); other 4xx and malformed replies are not;
  * a request that still fails comes back as `Completion(text="", error=reason)` with reason one of
    'timeout', 'connection', 'http_<status>', 'bad_response', 'error' (never raised, never silently empty);
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
from collections.abc import Sequence

import openai

from advgame.config.schema import SamplingConfig
from advgame.policy.chat import Prompt
from advgame.policy.sampling import Completion

log = logging.getLogger(__name__)


class OpenAIChatBackend:
    """OpenAI-compatible chat completions, batched with asyncio; see the module docstring."""

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        name: str | None = None,
    ):
        if not base_urls:
            raise ValueError("OpenAIChatBackend needs at least one base URL")
        if max_concurrency < 1 or timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ValueError("need max_concurrency >= 1, timeout_s > 0, max_retries >= 0, backoff_s >= 0")
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.model = model
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.name = name or f"openai:{model}"
        self._api_key = os.environ.get(api_key_env) or "EMPTY"
        self._cursor = 0  # round-robin position, carried across batches
        self._jitter = random.Random()

    def __repr__(self) -> str:
        return (
            f"OpenAIChatBackend(model={self.model!r}, base_urls={self.base_urls!r}, "
            f"max_concurrency={self.max_concurrency}, timeout_s={self.timeout_s}, "
            f"max_retries={self.max_retries})"
        )

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: SamplingConfig,
        *,
        num_samples: int = 1,
        seed: int | None = None,
        return_logprobs: bool = False,
    ) -> list[Completion]:
        """`num_samples` completions per prompt, prompt-major; request i gets seed `seed + i` when seeded."""
        if return_logprobs:
            raise NotImplementedError("OpenAIChatBackend is text only: it cannot return log-probs")
        messages = [[{"role": "user", "content": p}] if isinstance(p, str) else list(p) for p in prompts]
        jobs = [m for m in messages for _ in range(num_samples)]
        if not jobs:
            return []
        start, self._cursor = self._cursor, self._cursor + len(jobs)
        return _run_sync(lambda: self._run(jobs, sampling, seed, start))

    async def _run(self, jobs: list, sampling: SamplingConfig, seed: int | None, start: int) -> list:
        clients = [
            openai.AsyncOpenAI(base_url=url, api_key=self._api_key, max_retries=0, timeout=self.timeout_s)
            for url in self.base_urls
        ]
        gate = asyncio.Semaphore(self.max_concurrency)
        try:
            outs = await asyncio.gather(*(
                self._request(clients, gate, msgs, sampling, None if seed is None else seed + i, start + i)
                for i, msgs in enumerate(jobs)
            ))
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        failed = Counter(o.error for o in outs if o.error)
        if failed:
            log.warning("%s: %d of %d requests failed after retries: %s",
                        self.name, failed.total(), len(outs), dict(failed))
        return outs

    async def _request(self, clients, gate, messages, sampling: SamplingConfig, seed, slot) -> Completion:
        """One chat completion with retries; a Completion with `error` set when every attempt failed."""
        reason = "error"
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1) * (0.5 + self._jitter.random()))
            k = (slot + attempt) % len(clients)
            async with gate:
                try:
                    reply = await asyncio.wait_for(
                        clients[k].chat.completions.create(
                            model=self.model, messages=messages, n=1, temperature=sampling.temperature,
                            top_p=sampling.top_p, max_tokens=sampling.max_new_tokens,
                            **({} if seed is None else {"seed": seed}),
                        ),
                        self.timeout_s,
                    )
                    return _to_completion(reply)
                except Exception as err:  # noqa: BLE001 - every failure becomes a reason, none escapes the batch
                    reason, retry = _classify(err)
            log.debug("request to %s failed (%s), attempt %d of %d", self.base_urls[k], reason, attempt + 1,
                      self.max_retries + 1)
            if not retry:
                break
        return Completion(prompt_ids=[], token_ids=[], text="", truncated=False, error=reason)


class _BadResponse(Exception):
    """The server answered, but not with a usable chat completion."""


def _to_completion(reply) -> Completion:
    try:
        choice = reply.choices[0]
        text = choice.message.content
    except (AttributeError, IndexError, TypeError, KeyError) as err:
        raise _BadResponse(type(err).__name__) from err
    if not isinstance(text, str):
        raise _BadResponse("no text content")
    return Completion(prompt_ids=[], token_ids=[], text=text, truncated=choice.finish_reason == "length")


def _classify(err: BaseException) -> tuple[str, bool]:
    """(failure reason, worth retrying?) for an exception raised by one attempt."""
    if isinstance(err, (asyncio.TimeoutError, openai.APITimeoutError)):
        return "timeout", True
    if isinstance(err, openai.APIConnectionError):
        return "connection", True
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        return f"http_{status}", status == 429 or status >= 500
    if isinstance(err, (_BadResponse, openai.APIResponseValidationError, ValueError)):
        return "bad_response", False  # includes JSON decoding errors (a ValueError)
    return "error", False


def _run_sync(make_coro):
    """Run a coroutine to completion from sync code, even when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # a private loop on a helper thread
        return pool.submit(lambda: asyncio.run(make_coro())).result()
