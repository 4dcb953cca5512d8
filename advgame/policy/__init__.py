"""Policy operations: chat encoding, batched sampling, completion log-probs."""

from advgame.policy.chat import encode_completions, encode_prompts, eos_ids, pack_right_aligned, pad_left
from advgame.policy.logprobs import CompletionLogprobs, completion_logprobs
from advgame.policy.sampling import Completion, Rollouts, generate

__all__ = [
    "Completion",
    "CompletionLogprobs",
    "Rollouts",
    "completion_logprobs",
    "encode_completions",
    "encode_prompts",
    "eos_ids",
    "generate",
    "pack_right_aligned",
    "pad_left",
]
