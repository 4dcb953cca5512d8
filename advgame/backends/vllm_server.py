"""A GenerationBackend over one or more `vllm serve` processes, with adapter loading and a timed weight
channel.

    backend = VLLMServerBackend(["http://gpu1:8000/v1", "http://gpu2:8000/v1"],
    model="Qwen/Qwen2.5-7B-Instruct",
                                tokenizer=tokenizer)
    backend.load_adapter("runs/x/ema_adapter/step_12", name="defender")   # LoRA mode: no NCCL push
    outs = backend.generate(prompts, sampling, num_samples=4, seed=0, return_logprobs=True)

Generation. With a tokenizer, prompts are chat-templated locally and sent as token ids to `/v1/completions`
with `return_token_ids`, so completions carry prompt/token ids and (on request) the sampled tokens' log-probs,
exactly like the in-process backends. Without a tokenizer it is the text-only OpenAIChatBackend. Requests go
round-robin over the URLs; timeouts, connection errors, 429 and 5xx are retried with backoff; a request that
still fails comes back as `Completion(error=reason)`, never raised mid-batch.

LoRA mode. `load_adapter(path, name)` POSTs `/v1/load_lora_adapter` to *every* server (they must see `path`:
a shared filesystem) under a fresh versioned name (`name-v3`), switches generation to it, then unloads the
previous version. The servers need `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` and `--enable-lora`.

Full fine-tune mode. `reload_weights(dir)` asks every server to reload its weights from a safetensors
checkpoint written by the trainer (see `save_weights` and vllm_weight_channel.py for the protocol).

Every control call has a hard deadline (`sync_timeout_s`) and raises WeightSyncError naming the server, the
operation and the cause; nothing here can hang a training step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from advgame.backends.endpoint_pool import EndpointPool
from advgame.backends.openai_compat import OpenAIChatBackend
from advgame.backends.vllm_common import WeightSyncError, expand_requests, stop_token_ids, to_completion
from advgame.backends.vllm_weight_channel import post_json, reload_all
from advgame.config.schema import SamplingConfig
from advgame.policy.chat import Prompt
from advgame.policy.sampling import Completion

log = logging.getLogger(__name__)


class VLLMServerBackend:
    """Token-level generation on `vllm serve` replicas; see the module docstring."""

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        api_key_env: str = "VLLM_API_KEY",
        max_concurrency: int = 16,
        timeout_s: float = 300.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        sync_timeout_s: float = 60.0,
        name: str | None = None,
    ):
        if sync_timeout_s <= 0:
            raise ValueError("need sync_timeout_s > 0")
        self.name = name or f"vllm-server:{model}"
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
        self.timeout_s = timeout_s
        self.base_model = model
        self.served_model = model  # the name requests use: the base model, or the current adapter version
        self.tokenizer = tokenizer
        self.sync_timeout_s = sync_timeout_s
        self._api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) or "EMPTY"
        self._adapter_version = 0

    def __repr__(self) -> str:
        return (
            f"VLLMServerBackend(model={self.served_model!r}, base_urls={self.base_urls!r}, "
            f"timeout_s={self.timeout_s}, sync_timeout_s={self.sync_timeout_s})"
        )

    # ------------------------------------------------------------------ generation
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
        if not prompts:
            return []
        if self.tokenizer is None:  # text only, through the chat API
            pool = self.pool
            chat = OpenAIChatBackend(
                self.base_urls,
                self.served_model,
                api_key_env=self._api_key_env,
                max_concurrency=pool.max_concurrency,
                timeout_s=pool.timeout_s,
                max_retries=pool.max_retries,
                backoff_s=pool.backoff_s,
                name=self.name,
            )
            return chat.generate(
                prompts, sampling, num_samples=num_samples, seed=seed, return_logprobs=return_logprobs
            )
        stop = stop_token_ids(self.tokenizer)
        greedy = sampling.temperature == 0
        extra = {
            "return_token_ids": True,
            "stop_token_ids": stop,
            "skip_special_tokens": True,
            "include_stop_str_in_output": True,
        }

        def call(prompt_ids, request_seed):
            async def attempt(client) -> Completion:
                reply = await client.completions.create(
                    model=self.served_model,
                    prompt=prompt_ids,
                    n=1,
                    max_tokens=sampling.max_new_tokens,
                    temperature=sampling.temperature,
                    top_p=1.0 if greedy else sampling.top_p,
                    logprobs=0 if return_logprobs else None,
                    stop=list(sampling.stop) or None,
                    extra_body=extra,
                    **({} if request_seed is None else {"seed": request_seed}),
                )
                return self._to_completion(reply, prompt_ids, return_logprobs)

            return attempt

        jobs = expand_requests(self.tokenizer, prompts, num_samples, seed)
        return self.pool.run(
            [call(ids, s) for ids, s in jobs],
            lambda i, reason: Completion(
                prompt_ids=list(jobs[i][0]), token_ids=[], text="", truncated=False, error=reason
            ),
        )

    def _to_completion(self, reply, prompt_ids, return_logprobs: bool) -> Completion:
        try:
            choice = reply.choices[0]
            extra = choice.model_extra or {}
            token_ids = extra.get("token_ids")
            if token_ids is None:
                raise ValueError("the server returned no token_ids (a vLLM without `return_token_ids`?)")
            logprobs = None
            if return_logprobs:
                logprobs = list(choice.logprobs.token_logprobs)
                if len(logprobs) != len(token_ids):
                    raise ValueError("log-probs and token ids differ in length")
        except (AttributeError, IndexError, TypeError, KeyError) as err:
            raise ValueError(f"malformed completion: {type(err).__name__}") from err
        return to_completion(self.tokenizer, prompt_ids, token_ids, choice.finish_reason, logprobs)

    # ------------------------------------------------------------------ LoRA adapters
    def load_adapter(self, path: str, name: str = "adapter") -> str:
        """Load the adapter saved at `path` on every server as `name-vK`, serve it, unload the previous one.

        All-or-nothing: when any server fails, the versions already loaded are unloaded again and
        WeightSyncError is raised; generation keeps using the previous adapter.
        """
        self._adapter_version += 1
        new = f"{name}-v{self._adapter_version}"
        loaded = []
        try:
            for url in self.base_urls:
                post_json(
                    url,
                    "/load_lora_adapter",
                    {"lora_name": new, "lora_path": str(path)},
                    self.sync_timeout_s,
                    self._api_key,
                )
                loaded.append(url)
        except WeightSyncError:
            for url in loaded:
                self._unload(url, new)
            raise
        old, self.served_model = self.served_model, new
        if old != self.base_model:
            for url in self.base_urls:
                self._unload(url, old)
        log.info("%s: serving adapter %s from %s", self.name, new, path)
        return new

    def _unload(self, url: str, lora_name: str) -> None:
        """Best effort: a stale adapter left loaded wastes memory but is never served."""
        try:
            post_json(
                url, "/unload_lora_adapter", {"lora_name": lora_name}, self.sync_timeout_s, self._api_key
            )
        except WeightSyncError as err:
            log.warning("%s: could not unload %s: %s", self.name, lora_name, err)

    # ------------------------------------------------------------------ full fine-tune weights
    def reload_weights(self, checkpoint_dir: str) -> float:
        """Ask every server to load the safetensors weights in `checkpoint_dir`; seconds taken, or
        WeightSyncError."""
        return reload_all(self.base_urls, checkpoint_dir, self.sync_timeout_s, self._api_key)

    def ping(self) -> None:
        """Fail fast when a server is down: GET /models on every URL within `sync_timeout_s`."""
        for url in self.base_urls:
            post_json(url, "/models", None, self.sync_timeout_s, self._api_key, method="GET")
