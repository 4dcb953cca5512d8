"""Greedy Coordinate Gradient (Zou et al., 2023) on one white-box causal LM, written from the paper.

Minimise the cross-entropy of a target string (e.g. "Sure, here is ...") as the assistant's reply to
`user_text + " " + suffix`, over the suffix tokens:

  1. gradient of the loss w.r.t. a one-hot encoding of the suffix tokens (through the embedding matrix);
  2. per suffix position, the `topk` tokens with the most negative gradient (only allowed tokens: printable
     ASCII, no special tokens);
  3. `search_width` candidates, each the current suffix with one random position swapped to one random
     token of that position's top-k; candidates whose text does not re-tokenise to the same ids are dropped
     (so that the suffix transfers as text, e.g. to a remote target);
  4. the exact loss of every candidate in batched forward passes; move to the lowest (even if higher than
     the current loss, as in the paper), and keep the best suffix seen.

The chat template is applied once around a sentinel and split, so the suffix sits inside the user turn.
The text before the suffix is run once and its KV cache reused by every forward pass (`prefix_cache`);
only the logits that predict the target are computed.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

_SENTINEL = "\u2063GCGSUFFIX\u2063"


@dataclass
class GCGResult:
    suffix: str
    suffix_ids: list[int]
    best_loss: float
    losses: list[float] = field(default_factory=list)  # the current suffix's loss after each step
    best_losses: list[float] = field(default_factory=list)  # the best loss so far, initial value first
    steps: int = 0


def _split_template(tokenizer, user_text: str) -> tuple[list[int], list[int]]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": f"{user_text} {_SENTINEL}"}], tokenize=False, add_generation_prompt=True
    )
    before, after = text.split(_SENTINEL)
    enc = functools.partial(tokenizer, add_special_tokens=False)
    return enc(before)["input_ids"], enc(after)["input_ids"]


@functools.lru_cache(maxsize=8)
def _allowed_mask(tokenizer, vocab: int) -> torch.Tensor:
    """True for tokens a suffix may use: decodes to non-empty printable ASCII, not a special token."""
    special = set(tokenizer.all_special_ids)
    mask = torch.zeros(vocab, dtype=torch.bool)
    for i in range(min(vocab, len(tokenizer))):
        if i in special:
            continue
        s = tokenizer.decode([i])
        mask[i] = bool(s.strip()) and s.isascii() and s.isprintable()
    return mask


def _target_loss(model: torch.nn.Module, target: torch.Tensor, **inputs) -> torch.Tensor:
    """Mean CE per row of `target`, which ends every input sequence. Only the logits that predict the
    target are computed (`logits_to_keep`): the full [B, L, vocab] tensor would dominate time and memory."""
    keep = target.shape[0] + 1
    logits = model(**inputs, logits_to_keep=keep).logits[:, -keep:-1].float()
    return F.cross_entropy(logits.transpose(1, 2), target.expand(logits.shape[0], -1), reduction="none").mean(
        -1
    )


def gcg_optimize(
    model: torch.nn.Module,
    tokenizer,
    user_text: str,
    target_text: str,
    *,
    steps: int = 20,
    search_width: int = 64,
    topk: int = 64,
    suffix_len: int = 20,
    batch_size: int = 64,
    seed: int = 0,
    max_seconds: float = float("inf"),
    init: str = "!",
    prefix_cache: bool = True,
) -> GCGResult:
    """Run GCG for `steps` steps (or until `max_seconds`); see the module docstring."""
    start_time = time.monotonic()
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    embed = model.get_input_embeddings().weight  # [V, d]
    vocab = embed.shape[0]
    allowed = _allowed_mask(tokenizer, vocab).to(device)
    before, after = _split_template(tokenizer, user_text)
    target = torch.tensor(tokenizer(target_text, add_special_tokens=False)["input_ids"], device=device)
    init_ids = tokenizer(init, add_special_tokens=False)["input_ids"]
    if len(init_ids) != 1 or not allowed[init_ids[0]]:
        init_ids = [int(allowed.nonzero()[0])]
    suffix = torch.tensor(init_ids * suffix_len, device=device)
    pre, post = torch.tensor(before, device=device), torch.tensor(after, device=device)
    cache = _prefix_cache(model, pre) if prefix_cache else None

    def batch_loss(cands: torch.Tensor) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for k in range(0, cands.shape[0], batch_size):
                c = cands[k : k + batch_size]
                n = c.shape[0]
                rest = [c, post.expand(n, -1), target.expand(n, -1)]
                if cache is None:
                    out.append(
                        _target_loss(model, target, input_ids=torch.cat([pre.expand(n, -1), *rest], 1))
                    )
                else:
                    out.append(
                        _target_loss(
                            model, target, input_ids=torch.cat(rest, 1), past_key_values=_expanded(cache, n)
                        )
                    )
        return torch.cat(out)

    current_loss = float(batch_loss(suffix[None])[0])
    result = GCGResult(suffix="", suffix_ids=[], best_loss=current_loss, best_losses=[current_loss])
    best = suffix.clone()
    for _ in range(steps):
        if time.monotonic() - start_time >= max_seconds:
            break
        one_hot = F.one_hot(suffix, vocab).to(embed.dtype).requires_grad_(True)
        if cache is None:
            embeds = torch.cat([embed[pre], one_hot @ embed, embed[post], embed[target]])[None]
            loss = _target_loss(model, target, inputs_embeds=embeds)[0]
        else:
            embeds = torch.cat([one_hot @ embed, embed[post], embed[target]])[None]
            loss = _target_loss(model, target, inputs_embeds=embeds, past_key_values=_expanded(cache, 1))[0]
        (grad,) = torch.autograd.grad(loss, one_hot)
        grad = grad.masked_fill(~allowed[None], float("inf"))
        top = (-grad).topk(topk, dim=1).indices  # [suffix_len, topk]
        pos = torch.randint(0, suffix_len, (search_width,), generator=gen).to(device)
        pick = torch.randint(0, topk, (search_width,), generator=gen).to(device)
        cands = suffix.repeat(search_width, 1)
        cands[torch.arange(search_width, device=device), pos] = top[pos, pick]
        cands = _retokenisable(tokenizer, cands) if cands.shape[0] else cands
        losses = batch_loss(cands)
        k = int(losses.argmin())
        suffix, current_loss = cands[k].clone(), float(losses[k])
        if current_loss < result.best_loss:
            result.best_loss, best = current_loss, suffix.clone()
        result.losses.append(current_loss)
        result.best_losses.append(result.best_loss)
        result.steps += 1
    result.suffix_ids = best.tolist()
    result.suffix = tokenizer.decode(result.suffix_ids)
    return result


def _prefix_cache(model: torch.nn.Module, pre: torch.Tensor):
    """The KV cache of the fixed text before the suffix (computed once: it is about half of every
    sequence), or None when the model does not return a copyable cache."""
    with torch.no_grad():
        cache = model(input_ids=pre[None], use_cache=True).past_key_values
    return cache if hasattr(cache, "batch_repeat_interleave") else None


def _expanded(cache, n: int):
    """A fresh copy of the prefix cache for a batch of n (forward passes append to the cache they get)."""
    fresh = copy.deepcopy(cache)
    if n > 1:
        fresh.batch_repeat_interleave(n)
    return fresh


def _retokenisable(tokenizer, cands: torch.Tensor) -> torch.Tensor:
    """The candidates whose decoded text encodes back to the same ids (all of them if none does)."""
    keep = [
        i
        for i, row in enumerate(cands.tolist())
        if tokenizer(tokenizer.decode(row), add_special_tokens=False)["input_ids"] == row
    ]
    return cands[keep] if keep else cands
