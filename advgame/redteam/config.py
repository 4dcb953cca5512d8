"""The typed configuration of one `advgame redteam` run (a YAML file, key=value overrides, or the flags).

    advgame redteam configs/redteam/example.yaml behaviors.limit=2 target.path=smollm2

Unknown keys are errors (`extra="forbid"`), as in `advgame train`. See configs/redteam/example.yaml.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from advgame.config.schema import Section
from advgame.config.source import ModelSource

Format = Literal["think", "nothink", "plain"]


class TargetDecoding(Section):
    """How the target's replies are decoded."""

    max_new_tokens: int = Field(128, gt=0, description="Target reply cap.")
    temperature: float = Field(0.0, ge=0, description="Target temperature (0 = greedy).")


class BehaviorsConfig(Section):
    """The behaviours to attack."""

    source: str = Field("harmbench", description="harmbench or builtin:NAME (ignored when `file` is given).")
    file: str | None = Field(
        None, description="CSV (HarmBench schema) or JSONL {behavior_id, behavior, category}."
    )
    split: Literal["test", "val"] = Field("test", description="HarmBench split.")
    functional_category: Literal["standard", "contextual", "copyright", "all"] = Field(
        "standard", description="HarmBench FunctionalCategory to keep (a `file` keeps every row)."
    )
    limit: int | None = Field(None, gt=0, description="First N behaviours only (a larger one extends a run).")


class BudgetConfig(Section):
    """What one attack may spend on one behaviour."""

    max_queries: int = Field(20, gt=0, description="Target queries per attack and behaviour.")
    max_seconds: float = Field(300.0, gt=0, description="Seconds per attack and behaviour.")


class AttackerConfig(ModelSource):
    """The attacker LM of the advgame, pair and tap attacks."""

    max_new_tokens: int = Field(256, gt=0, description="Attacker generation cap.")
    temperature: float = Field(1.0, ge=0, description="Attacker temperature.")
    format: Format = Field("nothink", description="PAIR/TAP attacker answer layout.")
    advgame_format: Format = Field(
        "nothink",
        description="The trained Attacker's format (as in its training config: game.attacker_format).",
    )
    samples: int = Field(4, gt=0, description="advgame: rewrites per behaviour.")


class ScorerConfig(ModelSource):
    """The 1-10 scorer that steers PAIR and TAP; no model given: the offline heuristic scorer."""

    max_new_tokens: int = Field(256, gt=0, description="Scorer generation cap.")
    stop_score: float = Field(10.0, description="PAIR/TAP stop when a rating reaches this.")


class PairConfig(Section):
    streams: int = Field(3, gt=0, description="Parallel refinement streams.")
    iterations: int = Field(3, gt=0, description="Refinements per stream.")


class TapConfig(Section):
    branching: int = Field(2, gt=0, description="Children per node.")
    width: int = Field(2, gt=0, description="Nodes kept per level.")
    depth: int = Field(2, gt=0, description="Levels.")
    roots: int = Field(1, gt=0, description="Root prompts.")


class GcgConfig(Section):
    steps: int = Field(20, gt=0, description="Optimisation steps.")
    search_width: int = Field(64, gt=0, description="Candidate suffixes per step.")
    topk: int = Field(64, gt=0, description="Top-k token substitutions per position.")
    suffix_len: int = Field(20, gt=0, description="Suffix length in tokens.")
    surrogate: str | None = Field(
        None, description="Local white-box model to optimise on (needed for remote targets)."
    )
    target_template: str = Field(
        "Sure, here is {behavior}", description="GCG target string; {behavior} is filled in."
    )


class RedteamConfig(Section):
    """One `advgame redteam` run."""

    target: ModelSource = Field(default_factory=ModelSource, description="The model under attack.")
    decoding: TargetDecoding = Field(default_factory=TargetDecoding, description="The target's decoding.")
    attacks: list[str] = Field(
        default_factory=lambda: ["advgame", "pair", "tap", "gcg"],
        description="Attacks: advgame, pair, tap, gcg.",
    )
    behaviors: BehaviorsConfig = Field(
        default_factory=BehaviorsConfig, description="The behaviours to attack."
    )
    classifier: str = Field("refusal-string", description="Success classifier (eval registry name).")
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="Per attack and behaviour.")
    seed: int = Field(0, description="Seed of every attack and the scorer.")
    out: str | None = Field(
        None, description="Output dir (default runs/redteam/<target>); rerun into it to resume."
    )
    progress: bool = Field(True, description="Show a progress bar.")
    attacker: AttackerConfig = Field(
        default_factory=AttackerConfig, description="Attacker LM (advgame, pair, tap)."
    )
    judge: ScorerConfig = Field(default_factory=ScorerConfig, description="Scorer LM (pair, tap).")
    pair: PairConfig = Field(default_factory=PairConfig, description="PAIR sizes.")
    tap: TapConfig = Field(default_factory=TapConfig, description="TAP sizes.")
    gcg: GcgConfig = Field(default_factory=GcgConfig, description="GCG sizes and target string.")
