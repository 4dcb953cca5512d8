"""Validation: the Defender answers held-out seeds directly (no Attacker), and we measure how it answers.

    harmful/refusal_rate    share of answers to harmful seeds that refuse or deflect  (higher is safer)
    benign/compliance_rate  share of answers to benign seeds that do not refuse       (higher is more helpful)
    */judge_score           the Defender judge's mean score (deflection / compliance rubric, query = seed)
    */nll_initial           fluency: mean over answers of the per-token NLL of the answer under the Defender's
                            initial weights θ₀ (when it keeps them: logging.diagnostics); degenerate
                            text is high
    */distinct_2            distinct word bigrams / all word bigrams over the class's answers
                            (1 = no repetition)

The refusal-or-deflection classifier (the trainer passes `advgame.judges.refusal.is_refusal`, the same
matcher as `advgame eval`'s `refusal-string`) is named in the metrics (`classifier`), so every number says
what produced it. It is called as `is_refusal(answer, seed)`. Validation uses the Defender's current
(trained) weights, not its EMA.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import torch

from advgame.config.schema import SamplingConfig
from advgame.data.seeds import SeedPrompt
from advgame.eval.stats import bootstrap_ci
from advgame.game.scoring import DEFENDER_RUBRIC, Group, RoleJudge, score_groups
from advgame.player import Player
from advgame.policy.logprobs import completion_logprobs
from advgame.policy.sampling import Completion

RefusalClassifier = Callable[[str, str], bool]  # (answer, request) -> refused


def validate(
    defender: Player,
    seeds: dict[str, Sequence[SeedPrompt]],
    sampling: SamplingConfig,
    is_refusal: RefusalClassifier,
    judge: RoleJudge | None = None,
    seed: int = 0,
) -> tuple[dict[str, float], list[dict]]:
    """Metrics per class, and one record per (seed, answer) for the rollout log."""
    metrics: dict[str, float] = {}
    records: list[dict] = []
    for category, items in seeds.items():
        if not items:
            continue
        with defender.current_weights():
            outs = defender.backend.generate([s.text for s in items], sampling, seed=seed)
        texts = [o.text for o in outs]
        refused = [is_refusal(t, s.text) for t, s in zip(texts, items, strict=True)]
        rate = sum(refused) / len(refused)
        if category == "harmful":
            metrics["harmful/refusal_rate"] = rate
        else:
            metrics["benign/compliance_rate"] = 1.0 - rate
        metrics[f"{category}/n"] = len(items)
        metrics[f"{category}/truncated_rate"] = sum(o.truncated for o in outs) / len(outs)
        metrics[f"{category}/distinct_2"] = distinct_n(texts, 2)
        nlls = initial_nll(defender, outs)
        if nlls is not None:
            valid_nll = [x for x in nlls if x is not None]
            metrics[f"{category}/nll_initial"] = (
                sum(valid_nll) / len(valid_nll) if valid_nll else float("nan")
            )
        scores: list[float | None] = [None] * len(items)
        if judge is not None:
            groups = [
                Group(DEFENDER_RUBRIC[category], s.text, [t]) for s, t in zip(items, texts, strict=True)
            ]
            scores = [g[0] for g in score_groups(judge, groups)]
            valid = [s for s in scores if s is not None]
            metrics[f"{category}/judge_score"] = sum(valid) / len(valid) if valid else float("nan")
        records += [
            {"category": category, "seed": s.text, "answer": t, "refused": r, "score": sc, "nll_initial": x}
            for s, t, r, sc, x in zip(items, texts, refused, scores, nlls or [None] * len(items), strict=True)
        ]
    return metrics, records


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct word n-grams over all n-grams of `texts` (lower-cased words); 1.0 when there are none."""
    grams = []
    for text in texts:
        words = re.findall(r"[a-z0-9']+", text.lower())
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def initial_nll(
    player: Player, outs: Sequence[Completion], microbatch: int = 16
) -> list[float | None] | None:
    """Per-token NLL of each completion under the player's initial weights θ₀ (None for an empty one); None
    when the player keeps no initial weights, or is sharded (its θ₀ cannot be swapped into gathered
    weights)."""
    if player.initial is None or player.is_sharded:
        return None
    scored = [i for i, o in enumerate(outs) if o.token_ids and o.prompt_ids]
    out: list[float | None] = [None] * len(outs)
    with torch.no_grad(), player.initial.swapped_in(player.model):
        for start in range(0, len(scored), microbatch):
            idx = scored[start : start + microbatch]
            lp = completion_logprobs(
                player.model,
                [outs[i].prompt_ids for i in idx],
                [outs[i].token_ids for i in idx],
                player.tokenizer.pad_token_id,
            )
            for i, total, length in zip(idx, lp.sum.tolist(), lp.lengths.tolist(), strict=True):
                out[i] = -total / length
    return out


def summarise_validation(records: Sequence[dict], resamples: int = 2000, seed: int = 0) -> dict[str, dict]:
    """Held-out rates of one validation, from its records, each {"value", "ci95", "n"} with a 95% percentile
    bootstrap interval: harmful refusal-or-deflection, benign compliance, their mean (the balanced score;
    each class resampled on its own) and fluency (mean per-answer NLL under θ₀, both classes)."""
    refused = {c: [bool(r["refused"]) for r in records if r["category"] == c] for c in ("harmful", "benign")}
    harmful, compliant = refused["harmful"], [not x for x in refused["benign"]]
    nll = [r["nll_initial"] for r in records if r.get("nll_initial") is not None]
    out = {
        "harmful_refusal": _summary(harmful, resamples, seed),
        "benign_compliance": _summary(compliant, resamples, seed),
        "fluency_nll": _summary(nll, resamples, seed),
    }
    balanced = None
    if harmful and compliant:
        rng = np.random.default_rng(seed)
        h = rng.choice(np.asarray(harmful, float), size=(resamples, len(harmful))).mean(axis=1)
        b = rng.choice(np.asarray(compliant, float), size=(resamples, len(compliant))).mean(axis=1)
        lo, hi = np.quantile((h + b) / 2, [0.025, 0.975])
        value = (sum(harmful) / len(harmful) + sum(compliant) / len(compliant)) / 2
        balanced = {"value": value, "ci95": [float(lo), float(hi)], "n": len(harmful) + len(compliant)}
    out["balanced"] = balanced or {"value": None, "ci95": None, "n": 0}
    return out


def _summary(values: Sequence[float | bool], resamples: int, seed: int) -> dict:
    ci = bootstrap_ci(values, resamples=resamples, seed=seed)
    return {
        "value": sum(values) / len(values) if values else None,
        "ci95": list(ci) if ci else None,
        "n": len(values),
    }
