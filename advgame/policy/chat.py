"""Turn prompts and completions into token ids under a model's chat template."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

Prompt = str | Sequence[dict[str, str]]  # a user message, or a full list of chat messages


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt]) -> list[list[int]]:
    """Chat-templated prompt ids ending with the assistant header (add_generation_prompt=True)."""
    conversations = [[{"role": "user", "content": p}] if isinstance(p, str) else list(p) for p in prompts]
    texts = tokenizer.apply_chat_template(conversations, tokenize=False, add_generation_prompt=True)
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def encode_completions(
    tokenizer: PreTrainedTokenizerBase, completions: Sequence[str], truncated: Sequence[bool] | None = None
) -> list[list[int]]:
    """Completion ids; a finished completion ends with the end-of-turn token, a truncated one does not."""
    eos = eos_ids(tokenizer)[0]
    out = []
    for i, text in enumerate(completions):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append(ids if truncated is not None and truncated[i] else ids + [eos])
    return out


def eos_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids that end an assistant turn: the tokenizer's eos, plus ChatML's <|im_end|> when present."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id and im_end not in ids:
        ids.append(im_end)
    if not ids:
        raise ValueError("tokenizer has no end-of-sequence token")
    return ids


def pad_left(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token rows into (input_ids, attention_mask), both [B, L]."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.as_tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


def pack_right_aligned(
    rows: Sequence[Sequence[float]], width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-align per-token values into ([B, T] values, [B, T] mask): the layout of `completion_logprobs`."""
    width = width if width is not None else max((len(r) for r in rows), default=0)
    values = torch.zeros((len(rows), width), dtype=torch.float32)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        if len(r):
            values[i, width - len(r) :] = torch.as_tensor(list(r), dtype=torch.float32)
            mask[i, width - len(r) :] = True
    return values, mask
