"""A GenerationBackend over OpenAI-compatible chat endpoints (vLLM, SGLang, llama.cpp server, OpenAI...).

Text only: completions carry no token ids and no log-probs; `truncated` means finish_reason == "length".

    backend = OpenAIChatBackend(["http://h1:8000/v1", "http://h2:8000/v1"], model="Qwen/Qwen2.5-32B-Instruct")
    outs = backend.generate(prompts, SamplingConfig(temperature=0.6, max_new_tokens=1024), seed=0)

Round-robin over the URLs, a concurrency limit, a deadline per attempt, retries with jittered backoff, and
failures as `Completion(text="", error=reason)` come from `EndpointPool` (endpoint_pool.py, which lists the
reasons). The API key is read once from `api_key_env` and never logged or shown by `repr`.
"""

from __future__ import annotations

from collections.abc import Sequence

from advgame.backends.endpoint_pool import BadResponse, EndpointPool
from advgame.config.schema import SamplingConfig
from advgame.policy.chat import Prompt
from advgame.policy.sampling import Completion


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
        self.model = model
        self.name = name or f"openai:{model}"
        self.pool = EndpointPool(
            base_urls,
            api_key_env,
            max_concurrency=max_concurrency,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
            name=self.name,
        )
        self.base_urls = self.pool.base_urls

    def __repr__(self) -> str:
        return (
            f"OpenAIChatBackend(model={self.model!r}, base_urls={self.base_urls!r}, "
            f"max_concurrency={self.pool.max_concurrency}, timeout_s={self.pool.timeout_s}, "
            f"max_retries={self.pool.max_retries})"
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

        def call(msgs, request_seed):
            async def attempt(client) -> Completion:
                reply = await client.chat.completions.create(
                    model=self.model,
                    messages=msgs,
                    n=1,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    max_tokens=sampling.max_new_tokens,
                    stop=list(sampling.stop) or None,
                    **({} if request_seed is None else {"seed": request_seed}),
                )
                return _to_completion(reply)

            return attempt

        calls = [call(m, None if seed is None else seed + i) for i, m in enumerate(jobs)]
        return self.pool.run(calls, lambda i, reason: Completion([], [], "", False, error=reason))


def _to_completion(reply) -> Completion:
    try:
        choice = reply.choices[0]
        text = choice.message.content
    except (AttributeError, IndexError, TypeError, KeyError) as err:
        raise BadResponse(type(err).__name__) from err
    if not isinstance(text, str):
        raise BadResponse("no text content")
    return Completion(prompt_ids=[], token_ids=[], text=text, truncated=choice.finish_reason == "length")
