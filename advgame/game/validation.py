"""Validation: the Defender answers held-out seeds directly (no Attacker), and we measure how it answers.

    harmful/refusal_rate    share of answers to harmful seeds that refuse or deflect   (higher is safer)
    benign/compliance_rate  share of answers to benign seeds that do not refuse        (higher is more helpful)
    */judge_score           the Defender judge's mean score (deflection / compliance rubric, query = seed)

The refusal-or-deflection classifier (the trainer passes `advgame.judges.refusal.is_refusal`, the same
matcher as `advgame eval`'s `refusal-string`) is named in the metrics (`classifier`), so every number says
what produced it. It is called as `is_refusal(answer, seed)`. Validation uses the Defender's current
(trained) weights, not its EMA.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from advgame.config.schema import SamplingConfig
from advgame.data.seeds import SeedPrompt
from advgame.game.scoring import DEFENDER_RUBRIC, Group, RoleJudge, score_groups
from advgame.player import Player

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
        scores: list[float | None] = [None] * len(items)
        if judge is not None:
            groups = [Group(DEFENDER_RUBRIC[category], s.text, [t]) for s, t in zip(items, texts, strict=True)]
            scores = [g[0] for g in score_groups(judge, groups)]
            valid = [s for s in scores if s is not None]
            metrics[f"{category}/judge_score"] = sum(valid) / len(valid) if valid else float("nan")
        records += [
            {"category": category, "seed": s.text, "answer": t, "refused": r, "score": sc}
            for s, t, r, sc in zip(items, texts, refused, scores, strict=True)
        ]
    return metrics, records
