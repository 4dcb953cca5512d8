"""Interop with TRL's preference batches, used to check our losses against TRL's on identical tokens."""

from __future__ import annotations

import torch


def split_trl_batch(inputs: dict[str, torch.Tensor]) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, completion ids) per row of a TRL preference batch, in its [chosen…, rejected…] order."""
    prompts, completions = [], []
    for ids, attention, completion in zip(
        inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
    ):
        real = attention.bool()
        ids, completion = ids[real], completion[real].bool()
        start = int(completion.float().argmax())
        if not (completion[start:].all() and not completion[:start].any()):
            raise ValueError("a TRL row whose completion is not one trailing span")
        prompts.append(ids[:start].tolist())
        completions.append(ids[start:].tolist())
    return prompts, completions
