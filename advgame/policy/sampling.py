"""Batched sampling: one `generate` call per batch of prompts (left padding, KV cache), seeded.

Each completion keeps its token ids (scored later without re-tokenising), its text, a `truncated` flag
(it reached max_new_tokens without an end-of-turn token), and optionally the sampler's per-token
log-probs under the raw model distribution (the μ of GRPO's importance weight).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase

from advgame.config.schema import SamplingConfig
from advgame.policy.chat import Prompt, encode_prompts, eos_ids, pad_left


@dataclass
class Completion:
    prompt_ids: list[int]
    token_ids: list[int]  # includes the end-of-turn token when not truncated
    text: str  # decoded without special tokens
    truncated: bool
    logprobs: list[float] | None = None  # sampler log-prob of each token in token_ids
    error: str | None = None  # set by remote backends when the call failed after its retries


@dataclass
class Rollouts:
    completions: list[Completion] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]

    @property
    def truncated(self) -> list[bool]:
        return [c.truncated for c in self.completions]

    def __len__(self) -> int:
        return len(self.completions)


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    sampling: SamplingConfig,
    *,
    seed: int | None = None,
    num_samples: int = 1,
    return_logprobs: bool = False,
) -> Rollouts:
    """Sample `num_samples` completions per prompt; output order is prompt-major (p0s0, p0s1, p1s0, …)."""
    prompt_ids = [ids for ids in encode_prompts(tokenizer, prompts) for _ in range(num_samples)]
    stop = eos_ids(tokenizer)
    device = next(model.parameters()).device
    rollouts = Rollouts()
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        for start in range(0, len(prompt_ids), sampling.batch_size):
            batch = prompt_ids[start:start + sampling.batch_size]
            rollouts.completions += _generate_batch(model, tokenizer, batch, sampling, stop, device, return_logprobs)
    model.train(was_training)
    return rollouts


def _stop_string_end(tokenizer, row: list[int], stops: Sequence[str]) -> int | None:
    """Index of the token that completes the first stop string in `row`, or None."""
    for j in range(len(row)):
        if any(s in tokenizer.decode(row[: j + 1], skip_special_tokens=True) for s in stops):
            return j
    return None


def _generate_batch(model, tokenizer, batch, sampling, stop, device, return_logprobs) -> list[Completion]:
    input_ids, attention_mask = pad_left(batch, tokenizer.pad_token_id)
    greedy = sampling.temperature == 0
    out = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        do_sample=not greedy,
        temperature=None if greedy else sampling.temperature,
        top_p=None if greedy else sampling.top_p,
        top_k=None,
        max_new_tokens=sampling.max_new_tokens,
        eos_token_id=stop,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
        synced_gpus=False,  # each process generates on its own (a sharded player is gathered first)
        return_dict_in_generate=True,
        output_logits=return_logprobs,
        **({"stop_strings": list(sampling.stop), "tokenizer": tokenizer} if sampling.stop else {}),
    )
    new_tokens = out.sequences[:, input_ids.shape[1]:].cpu()
    step_logps = None
    if return_logprobs:
        logits = torch.stack(out.logits, dim=1).float()  # [B, steps, V], raw (before temperature/top-p)
        step_logps = (logits.gather(-1, new_tokens.unsqueeze(-1).to(logits.device)).squeeze(-1)
                      - torch.logsumexp(logits, dim=-1)).cpu()
    completions = []
    for i, row in enumerate(new_tokens.tolist()):
        end = next((j for j, t in enumerate(row) if t in stop), None)
        if end is None and sampling.stop:  # ended on a stop string: the row continues with padding only
            end = _stop_string_end(tokenizer, row, sampling.stop)
        ids = row if end is None else row[: end + 1]
        completions.append(
            Completion(
                prompt_ids=batch[i],
                token_ids=ids,
                text=tokenizer.decode(ids, skip_special_tokens=True),
                truncated=end is None,
                logprobs=step_logps[i, : len(ids)].tolist() if step_logps is not None else None,
            )
        )
    return completions
