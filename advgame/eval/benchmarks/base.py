"""What a benchmark is: a name, an axis, a metric, canonical sources, and a parser of its file schema.

axis           metric       higher_is_better   kind
safety         asr          False              generate: answer each item, classify, count attack success
over_refusal   compliance   True               generate: answer each item, classify, count compliance
utility        accuracy     True               lm-eval: run through lm-eval-harness (optional extra)
utility        win_rate     True               win-rate: pairwise LLM judge against a baseline's answers
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from advgame.eval.benchmarks.sources import Source, resolve

Axis = Literal["safety", "over_refusal", "utility"]


@dataclass(frozen=True)
class EvalItem:
    id: str  # stable across runs (the dataset's own id when it has one): keys the answer cache
    prompt: str  # what the model is asked, as sent
    category: str | None = None  # for the per-category breakdown
    behavior: str | None = None  # the underlying behaviour when `prompt` wraps it (jailbreak templates)
    context: str | None = None  # HarmBench contextual behaviours


@dataclass(frozen=True)
class Benchmark:
    name: str
    axis: Axis
    metric: Literal["asr", "compliance", "accuracy", "win_rate"]
    description: str
    sources: tuple[Source, ...] = ()
    parse: Callable[[Path], list[EvalItem]] | None = None  # file -> items (generate and win-rate kinds)
    kind: Literal["generate", "lm-eval", "win-rate"] = "generate"
    options: dict = field(default_factory=dict)  # kind-specific (lm-eval task name, ...)
    uses: tuple[str, ...] = ()  # other benchmarks whose data this one reads (dan: harmbench behaviours)

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "asr"

    def load(
        self, data_file: str | None = None, limit: int | None = None, data_files: dict[str, str] | None = None
    ) -> tuple[list[EvalItem], dict]:
        """The items (the first `limit` of them) and the data's provenance for the results file.
        `data_files` (all --data-file values) supplies the files of the benchmarks named in `uses`."""
        if self.parse is None:
            raise ValueError(f"benchmark {self.name} has no item file")
        path, provenance = resolve(self.name, self.sources, data_file)
        related = {f"{u}_file": (data_files or {}).get(u) for u in self.uses}
        items = self.parse(path, **related)
        return (items[:limit] if limit else items), provenance
