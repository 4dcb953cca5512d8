"""In-process ("colocate") generation on a `vllm.LLM` engine, with weight pushes, adapters and sleep/wake.

    backend = VLLMEngineBackend("Qwen/Qwen2.5-7B-Instruct", dtype="bfloat16", gpu_memory_utilization=0.35,
                                enable_sleep_mode=True)
    outs = backend.generate(prompts, sampling, num_samples=4, seed=0, return_logprobs=True)
    seconds = backend.push_weights(policy.state_dict().items())   # after each update (full fine-tune)
    backend.load_adapter("runs/x/adapters/step_12", name="defender")  # LoRA mode: generate with that adapter
    backend.sleep(); train(); backend.wake_up()                         # share GPU memory with training

Prompts are chat-templated by our tokenizer and sent as token ids (vllm_common.py), so prompt ids, stop
tokens and decoded text match the HF backend; request i of a batch gets seed `seed + i`. Log-probs are the
engine's raw (pre-temperature) log-probs of the sampled tokens, as the HF backend returns.

Weight push: the tensors are written as safetensors (in /dev/shm when it exists), then
`LLM.collective_rpc("advgame_reload_weights", timeout=...)` runs vLLM's in-place `reload_weights` in every
worker (vllm_worker.py, installed as the engine's `worker_extension_cls`; it also refreshes a tied output
head, which vLLM 0.32 leaves stale), and the prefix cache is reset so no KV computed with old weights is
reused. Each push is timed (`last_push_seconds`); a failure or a timeout raises WeightSyncError.
Plain tensors cannot go through `collective_rpc` (vLLM serialises its arguments; they arrive as lists).

Memory: on a GPU the engine takes `gpu_memory_utilization` of the GPU's memory. On CPU, vLLM (0.32) reads the
same setting as a share of *system* memory (0.92 by default: it then fails to start on a machine whose free
memory is below that, or takes most of it); so on CPU the KV cache gets an explicit size instead:
`kv_cache_gib`, else vLLM's own `VLLM_CPU_KVCACHE_SPACE` (GiB) when set, else CPU_DEFAULT_KV_CACHE_GIB.

Sleep mode (CUDA only) offloads the weights and discards the KV cache while the trainer runs; without it
(or on CPU, where asking for it logs a warning at start) `sleep`/`wake_up` do nothing.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterable, Sequence

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from advgame.backends.vllm_common import (
    WeightSyncError,
    expand_requests,
    import_vllm,
    stop_token_ids,
    to_completion,
)
from advgame.backends.vllm_weight_channel import save_weights
from advgame.config.schema import SamplingConfig
from advgame.models.loading import prepare_tokenizer, resolve_model_source
from advgame.policy.chat import Prompt
from advgame.policy.sampling import Completion

log = logging.getLogger(__name__)
WORKER_EXTENSION = "advgame.backends.vllm_worker.WeightSyncExtension"
CPU_DEFAULT_KV_CACHE_GIB = 1.0  # SmolLM2-135M fp32: ~23k cached tokens


def memory_kwargs(
    on_gpu: bool, gpu_memory_utilization: float, kv_cache_gib: float | None, environ: dict | None = None
) -> dict:
    """vLLM engine arguments that bound its memory (see the module docstring)."""
    environ = os.environ if environ is None else environ
    kwargs: dict = {"gpu_memory_utilization": gpu_memory_utilization} if on_gpu else {}
    if kv_cache_gib is None and not on_gpu and not environ.get("VLLM_CPU_KVCACHE_SPACE"):
        kv_cache_gib = CPU_DEFAULT_KV_CACHE_GIB
    if kv_cache_gib is not None:
        kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
    return kwargs


class VLLMEngineBackend:
    """A GenerationBackend on an in-process vllm.LLM; see the module docstring."""

    def __init__(
        self,
        model: str,
        *,
        tokenizer: PreTrainedTokenizerBase | None = None,
        dtype: str = "auto",
        seed: int = 0,
        gpu_memory_utilization: float = 0.35,
        max_model_len: int | None = None,
        kv_cache_gib: float | None = None,
        enable_sleep_mode: bool = False,
        enable_lora: bool = False,
        max_lora_rank: int = 16,
        sync_timeout_s: float = 300.0,
        name: str | None = None,
        **engine_kwargs,
    ):
        vllm = import_vllm()
        source = resolve_model_source(model)
        self.tokenizer = prepare_tokenizer(tokenizer or AutoTokenizer.from_pretrained(source))
        self.name = name or f"vllm:{model}"
        self.sync_timeout_s = sync_timeout_s
        self.on_gpu = torch.cuda.is_available()
        self.sleep_enabled = enable_sleep_mode and self.on_gpu
        if enable_sleep_mode and not self.on_gpu:
            log.warning(
                "%s: enable_sleep_mode needs CUDA; ignored on this machine (the engine keeps its memory)",
                self.name,
            )
        kwargs = dict(
            model=source,
            tokenizer=source,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            enable_prefix_caching=True,
            worker_extension_cls=WORKER_EXTENSION,
            **memory_kwargs(self.on_gpu, gpu_memory_utilization, kv_cache_gib),
            **engine_kwargs,
        )
        if self.on_gpu:
            kwargs.update(enable_sleep_mode=self.sleep_enabled)
        if enable_lora:
            kwargs.update(enable_lora=True, max_lora_rank=max_lora_rank, max_loras=2)
        t0 = time.perf_counter()
        self.llm = vllm.LLM(**kwargs)
        log.info("%s: engine ready in %.1f s", self.name, time.perf_counter() - t0)
        self._vllm = vllm
        self._lora_request = None
        self._lora_id = 0
        self.last_push_seconds: float | None = None
        self.asleep = False

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
        """`num_samples` completions per prompt, prompt-major."""
        if not prompts:
            return []
        if self.asleep:
            raise RuntimeError(f"{self.name} is asleep: call wake_up() before generate()")
        from vllm.inputs import TokensPrompt

        jobs = expand_requests(self.tokenizer, prompts, num_samples, seed)
        params = [self._sampling_params(sampling, s, return_logprobs) for _, s in jobs]
        outs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids, _ in jobs],
            params,
            lora_request=self._lora_request,
            use_tqdm=False,
        )
        completions = []
        for (ids, _), out in zip(jobs, outs):
            sample = out.outputs[0]
            token_ids = list(sample.token_ids)
            logps = None
            if return_logprobs:
                logps = [step[tok].logprob for step, tok in zip(sample.logprobs, token_ids)]
            completions.append(to_completion(self.tokenizer, ids, token_ids, sample.finish_reason, logps))
        return completions

    def _sampling_params(self, sampling: SamplingConfig, seed: int | None, return_logprobs: bool):
        greedy = sampling.temperature == 0
        return self._vllm.SamplingParams(
            n=1,
            temperature=sampling.temperature,
            top_p=1.0 if greedy else sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            seed=seed,
            logprobs=0 if return_logprobs else None,  # 0: only the sampled token's log-prob
            stop_token_ids=stop_token_ids(self.tokenizer),
            stop=list(sampling.stop) or None,
            include_stop_str_in_output=True,
            skip_special_tokens=True,
        )

    # ------------------------------------------------------------------ weights and adapters
    def push_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> float:
        """Load (HF parameter name, tensor) pairs into the engine; seconds taken, or WeightSyncError.

        Pass a full model's `state_dict().items()` (or its EMA's); for a peft model, merge first or use
        `load_adapter`. The tensors go through a safetensors file in /dev/shm (RAM) when it exists: vLLM's
        engine runs in its own process, and its `collective_rpc` carries control messages, not tensors.
        """
        t0 = time.perf_counter()
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        with tempfile.TemporaryDirectory(prefix="advgame-weights-", dir=shm) as tmp:
            save_weights(named_tensors, tmp)
            saved = time.perf_counter() - t0
            self.reload_weights(tmp)
        self.last_push_seconds = time.perf_counter() - t0
        log.info(
            "%s: pushed weights in %.2f s (%.2f s writing them)", self.name, self.last_push_seconds, saved
        )
        return self.last_push_seconds

    def reload_weights(self, weights_dir: str) -> None:
        """Reload the engine's weights from the safetensors in `weights_dir`, within `sync_timeout_s`."""
        try:
            self.llm.collective_rpc(
                "advgame_reload_weights", args=(str(weights_dir),), timeout=self.sync_timeout_s
            )
            self.llm.reset_prefix_cache()  # no KV computed with the old weights is reused
        except Exception as err:
            raise WeightSyncError(f"{self.name}: weight reload from {weights_dir} failed: {err}") from err

    def weight_checksum(self, name_fragment: str) -> float:
        """Sum of engine parameters whose (vLLM) name contains `name_fragment`; for tests and sanity
        checks."""
        return self.llm.collective_rpc("advgame_weight_checksum", args=(name_fragment,))[0]

    def load_adapter(self, path: str, name: str = "adapter"):
        """Generate with the peft adapter saved at `path` from now on (a fresh LoRA id each call)."""
        from vllm.lora.request import LoRARequest

        self._lora_id += 1
        self._lora_request = LoRARequest(f"{name}-v{self._lora_id}", self._lora_id, str(path))
        return self._lora_request

    def clear_adapter(self) -> None:
        """Generate with the base weights again."""
        self._lora_request = None

    # ------------------------------------------------------------------ memory sharing
    def sleep(self, level: int = 1) -> None:
        """Free the engine's GPU memory for training (level 1 keeps weights in CPU memory, 2 drops them)."""
        if (
            not self.sleep_enabled
        ):  # not asked for, or on CPU (warned once at start): the engine keeps its memory
            return
        self.llm.sleep(level=level)
        self.asleep = True

    def wake_up(self) -> None:
        if not self.sleep_enabled:
            return
        self.llm.wake_up()
        self.asleep = False

    def close(self) -> None:
        """Shut the engine down (its worker processes included)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
            del llm
