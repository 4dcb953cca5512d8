"""Batched sampling: one `generate` call per batch of prompts (left padding, KV cache), seeded.

Each completion keeps its token ids (scored later without re-tokenising), its text, a `truncated` flag
(it reached max_new_tokens without an end-of-turn token), and optionally the sampler's per-token
log-probs under the raw model distribution (the μ of GRPO's importance weight).

Sampler log-probs are taken at each decoding step and only the sampled token's is kept: a forward hook on
the model holds that step's last-position logits (one [B, V] tensor), and a stopping criterion, which
`generate` calls right after appending the sampled tokens, turns them into log π(token) = logit − logsumexp
and drops them. So memory is one step's logits, not every step's ([B, steps, V]: 80 GB at 64 × 2,048 ×
152k in float32), and the values are exactly those of the logits the sampler drew from (raw: before
temperature and top-p), in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

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
            batch = prompt_ids[start : start + sampling.batch_size]
            rollouts.completions += _generate_batch(
                model, tokenizer, batch, sampling, stop, device, return_logprobs
            )
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
    recorder = None
    if return_logprobs:  # the sampled tokens' log-probs, step by step (no full-vocabulary logits kept)
        recorder = SampledLogprobs(model, len(batch), sampling.max_new_tokens, device)
    try:
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
            stopping_criteria=StoppingCriteriaList([recorder]) if recorder is not None else None,
            **({"stop_strings": list(sampling.stop), "tokenizer": tokenizer} if sampling.stop else {}),
        )
    finally:
        if recorder is not None:
            recorder.close()
    new_tokens = out.sequences[:, input_ids.shape[1] :].cpu()
    step_logps = recorder.logprobs(new_tokens.shape[1]) if recorder is not None else None
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


class SampledLogprobs(StoppingCriteria):
    """Per-step log-prob of each sampled token, without keeping full-vocabulary logits.

    A forward hook on the transformers model keeps the last position's logits of the latest forward (the
    distribution the next token is drawn from, before temperature and top-p); `generate` then samples, appends
    the tokens and calls its stopping criteria, where this one gathers the sampled token's logit, subtracts
    the logsumexp (float32, as `generate` itself upcasts) and lets the logits go. It never stops anything.
    """

    def __init__(self, model: torch.nn.Module, batch: int, max_new_tokens: int, device: torch.device):
        target = model.get_base_model() if hasattr(model, "get_base_model") else model  # what generate calls
        self._pending: torch.Tensor | None = None
        # one [B, max_new_tokens] buffer, allocated before generation: small tensors kept from each step would
        # sit between the large per-step blocks on the CPU heap and stop it from shrinking (at a 152k
        # vocabulary that retained hundreds of MB of resident memory)
        self._out = torch.zeros(batch, max_new_tokens, dtype=torch.float32, device=device)
        self._steps = 0
        self._handle = target.register_forward_hook(self._keep_logits)

    def _keep_logits(self, module, args, output) -> None:
        logits = output.logits if hasattr(output, "logits") else output[0]
        self._pending = logits[:, -1].float()

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        logits, self._pending = self._pending, None
        if logits is None:
            raise RuntimeError("sampler log-probs: no logits seen for this decoding step")
        token = input_ids[:, -1:].to(logits.device)
        if self._steps == self._out.shape[1]:  # `generate` may run a step past the end, then undo it
            self._out = torch.cat([self._out, torch.zeros_like(self._out[:, :8])], dim=1)
        picked = logits.gather(-1, token).squeeze(-1)
        self._out[:, self._steps] = picked.sub_(torch.logsumexp(logits, dim=-1))
        self._steps += 1
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def logprobs(self, steps: int) -> torch.Tensor:
        """[B, steps] log-probs on the CPU (`generate` may have run and undone a few extra steps)."""
        if self._steps < steps:
            raise RuntimeError(f"sampler log-probs: {self._steps} decoding steps recorded for {steps} tokens")
        return self._out[:, :steps].cpu()

    def close(self) -> None:
        self._handle.remove()
        self._pending = None
