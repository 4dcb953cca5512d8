"""The typed configuration of one `advgame eval` run (a YAML file, key=value overrides, or the flags).

    advgame eval configs/eval/example.yaml limit=5 model.path=smollm2

Unknown keys are errors (`extra="forbid"`), as in `advgame train`. See configs/eval/example.yaml.
"""

from __future__ import annotations

from pydantic import Field

from advgame.config.schema import SamplingConfig, Section
from advgame.config.source import ModelSource

DEFAULT_MAX_NEW_TOKENS = 256


class EvalDecoding(Section):
    """How the scored model's answers are decoded (recorded in every result)."""

    max_new_tokens: int | None = Field(
        None,
        gt=0,
        description=f"Generation cap; None: {DEFAULT_MAX_NEW_TOKENS} (lm-eval tasks: the task's own).",
    )
    temperature: float = Field(0.0, ge=0, description="0 = greedy (resumes reproduce exactly).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    batch_size: int = Field(8, gt=0, description="Prompts per generate call (also the llm-judge's batch).")

    def sampling(self) -> SamplingConfig:
        cap = DEFAULT_MAX_NEW_TOKENS if self.max_new_tokens is None else self.max_new_tokens
        return SamplingConfig(
            temperature=self.temperature, top_p=self.top_p, max_new_tokens=cap, batch_size=self.batch_size
        )


class EvalJudge(ModelSource):
    """The LLM judge of the llm-judge classifier and the win-rate benchmarks (local model or endpoint)."""

    max_new_tokens: int = Field(
        512, gt=0, description="Judge generation cap; a cut-off judgment is undecided."
    )


class EvalConfig(Section):
    """One `advgame eval` run."""

    model: ModelSource = Field(
        default_factory=ModelSource, description="The model to score (path, or url+model)."
    )
    benchmarks: list[str] = Field(min_length=1, description="Benchmarks to run (see `advgame eval --help`).")
    classifiers: list[str] = Field(
        default_factory=lambda: ["refusal-string"],
        description="Classifiers; refusal-string beside llm-judge also reports how often their verdicts "
        "disagree.",
    )
    limit: int | None = Field(None, gt=0, description="First N items of each benchmark.")
    data_files: dict[str, str] = Field(default_factory=dict, description="Local file per benchmark name.")
    baseline_answers: dict[str, str] = Field(
        default_factory=dict, description="Win-rate baselines per benchmark."
    )
    output_dir: str | None = Field(
        None, description="Where answers, verdicts and results go (eval_results/<model>)."
    )
    decoding: EvalDecoding = Field(default_factory=EvalDecoding, description="Decoding of the scored model.")
    seed: int = Field(0, description="Sampling and bootstrap seed.")
    resamples: int = Field(2000, gt=0, description="Bootstrap resamples for the 95% CI.")
    device: str = Field("auto", description="Device of local models (scored model, judge, guards).")
    judge: EvalJudge = Field(
        default_factory=EvalJudge, description="LLM judge (llm-judge, win-rate benchmarks)."
    )
    guard_path: str | None = Field(
        None, description="Local weights dir of a guard classifier (harmbench-cls, wildguard, llama-guard-3)."
    )
    progress: bool = Field(True, description="Show progress bars.")
