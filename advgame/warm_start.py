"""Warm start: a short supervised pass that gives the Defender the behaviour the game is to refine.

The paper's players start as safety-tuned instruct models, which refuse some harmful requests and
over-refuse some benign ones: the game has both failure modes to trade off. SmolLM2-135M-Instruct never
samples a refusal, so a preference method has nothing to prefer. Before the game (`warm_start.enabled`),
the Defender is fine-tuned briefly with a LoRA adapter, which is then merged into its weights, on:

    a share (`refusal_fraction`) of the TRAINING harmful seeds  ->  a refusal-and-redirect text (REFUSALS,
                                                                   written for this project, round-robin)
    every TRAINING benign seed                                  ->  the model's own greedy answer
                                                                   (`answer_tokens` tokens), which anchors
                                                                   helpfulness to what it already says

Loss: mean negative log-likelihood of the answer tokens (the chat-formatted seed is the prompt). Held-out
and tuning seeds are never seen. The merged model is saved under `$ADVGAME_CACHE/warm_start/<hash>`, keyed
by the base model, the rows' seeds and the settings, so a second run (and every process of a
multi-process run) reuses it. A documented departure from the paper, not part of the AdvGame method.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import track

from advgame import distributed
from advgame.config.schema import ModelConfig, RunConfig, SamplingConfig, WarmStartConfig
from advgame.data.seeds import SeedPrompt
from advgame.models.gguf import cache_root
from advgame.models.loading import load_model
from advgame.policy.chat import encode_completions, encode_prompts, pad_left
from advgame.policy.sampling import generate

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # bump when the rows or the training recipe change: old cache entries are then unused

# Refusal-and-redirect answers, written for this project: decline briefly, say why, offer a safe direction.
REFUSALS = (
    "I can't help with that because it could hurt people. I'm happy to help with something safer instead.",
    (
        "Sorry, I won't assist with this, since it could cause real harm. Consider reaching out to a "
        "professional."
    ),
    "I'm not able to help with that request. If you're worried about safety, I can share general resources.",
    "I can't provide that, as it could be dangerous or illegal. Is there something else I can help you with?",
)


def warm_start_rows(
    harmful: list[SeedPrompt], benign: list[SeedPrompt], cfg: WarmStartConfig
) -> tuple[list[tuple[str, str]], list[str]]:
    """(refusal rows as (seed, text), benign seeds to be answered by the model itself). The harmful seeds
    that get a refusal are a `refusal_fraction` share drawn with a fixed seed."""
    n = round(cfg.refusal_fraction * len(harmful))
    chosen = sorted(random.Random(0).sample(range(len(harmful)), n))
    refusals = [(harmful[i].text, REFUSALS[k % len(REFUSALS)]) for k, i in enumerate(chosen)]
    return refusals, [s.text for s in benign]


def cache_key(model_cfg: ModelConfig, cfg: WarmStartConfig, refusals, benign: list[str]) -> str:
    payload = {
        "version": FORMAT_VERSION,
        "base": model_cfg.path,
        "revision": model_cfg.revision,
        "dtype": model_cfg.dtype,
        "settings": cfg.model_dump(mode="json", exclude={"enabled"}),
        "refusals": refusals,
        "benign": benign,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def apply_warm_start(cfg: RunConfig, train_seeds: dict[str, list[SeedPrompt]]) -> RunConfig:
    """`cfg` with the Defender's path pointing at its warm-started copy (unchanged when the warm start is
    off)."""
    if not cfg.warm_start.enabled:
        return cfg
    path = warm_started(
        cfg.defender,
        cfg.warm_start,
        train_seeds["harmful"],
        train_seeds["benign"],
        cfg.seed,
        progress=cfg.logging.progress,
    )
    return cfg.model_copy(update={"defender": cfg.defender.model_copy(update={"path": str(path)})})


def warm_started(
    model_cfg: ModelConfig,
    cfg: WarmStartConfig,
    harmful: list[SeedPrompt],
    benign: list[SeedPrompt],
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """The warm-started model's directory, trained on first use (by the main process) and cached."""
    refusals, benign_texts = warm_start_rows(harmful, benign, cfg)
    target = cache_root() / "warm_start" / cache_key(model_cfg, cfg, refusals, benign_texts)
    console = Console(stderr=True)
    if distributed.info().is_main:
        if (target / "config.json").is_file():
            console.print(f"warm start: cached, {target}")
        else:
            console.print(
                f"warm start: fine-tuning the Defender once ({len(refusals)} refusal rows, "
                f"{len(benign_texts)} benign rows, {cfg.steps} steps) -> {target}"
            )
            _train_and_save(model_cfg, cfg, refusals, benign_texts, target, seed, progress and console)
    distributed.barrier()
    return target


def _train_and_save(
    model_cfg: ModelConfig,
    cfg: WarmStartConfig,
    refusals,
    benign: list[str],
    target: Path,
    seed: int,
    console: Console | None,
) -> None:
    torch.manual_seed(seed)
    model, tokenizer = load_model(model_cfg.model_copy(update={"finetune": "lora", "lora": cfg.lora}))
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=cfg.answer_tokens, batch_size=64)
    answers = generate(model, tokenizer, benign, greedy, seed=seed).completions
    # An answer cut at the cap keeps no end-of-turn token, so the model does not learn to stop mid-sentence.
    rows = [(p, c.token_ids) for p, c in zip(benign, answers, strict=True) if c.token_ids]
    texts = [t for _, t in refusals]
    refusal_ids = encode_completions(tokenizer, texts)
    rows += [(p, ids) for (p, _), ids in zip(refusals, refusal_ids, strict=True)]
    prompts = dict(zip([p for p, _ in rows], encode_prompts(tokenizer, [p for p, _ in rows]), strict=False))
    fit(model, tokenizer.pad_token_id, [(prompts[p], ids) for p, ids in rows], cfg, seed, console)
    merged = model.merge_and_unload()
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=_ensure(target.parent)))
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "warm_start.json").write_text(
        json.dumps(
            {
                "base": model_cfg.path,
                "settings": cfg.model_dump(mode="json"),
                "refusal_rows": len(refusals),
                "benign_rows": len(benign),
                "note": "advgame warm start (advgame/warm_start.py); merged LoRA",
            },
            indent=2,
        )
    )
    try:
        tmp.rename(target)
    except OSError:  # another process won the race: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)


def fit(
    model: torch.nn.Module,
    pad_id: int,
    rows: list[tuple[list[int], list[int]]],
    cfg: WarmStartConfig,
    seed: int,
    console: Console | None = None,
) -> list[float]:
    """`cfg.steps` AdamW steps of mean answer-token NLL on batches drawn from `rows` in shuffled epochs;
    returns the loss of each step (with a progress bar on `console`)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    rng, order, losses = random.Random(seed), [], []
    model.train()
    for _ in track(range(cfg.steps), description="warm start", console=console, disable=console is None):
        batch = []
        while len(batch) < cfg.batch_size:
            if not order:
                order = list(range(len(rows)))
                rng.shuffle(order)
            batch.append(rows[order.pop()])
        loss = sft_loss(model, pad_id, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    log.info("warm start: loss %.3f -> %.3f over %d steps", losses[0], losses[-1], len(losses))
    return losses


def sft_loss(model: torch.nn.Module, pad_id: int, batch: list[tuple[list[int], list[int]]]) -> torch.Tensor:
    """Mean NLL of the answer tokens of (prompt ids, answer ids) rows, left-padded into one forward."""
    input_ids, attention = pad_left([p + a for p, a in batch], pad_id)
    labels = torch.full_like(input_ids, -100)
    for row, (_, answer) in enumerate(batch):
        labels[row, input_ids.shape[1] - len(answer) :] = torch.tensor(answer)
    device = next(model.parameters()).device
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        position_ids=position_ids.to(device),
        labels=labels.to(device),
        use_cache=False,
    )
    return out.loss


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
