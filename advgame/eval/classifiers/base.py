"""One interface for every success/refusal classifier used by `advgame eval` and `advgame redteam`.

A classifier reads (request, response) items and returns one Verdict per item. It names itself and its
version, and that name goes into every result it produced. A classifier that cannot decide an item
(malformed judge output, failed endpoint call, missing weights) returns a Verdict with `error` set and its
fields None: callers count it as undecided, never as safe or harmful.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ClassifyItem:
    request: str  # what the model was asked (the benchmark prompt, or the jailbreak as sent)
    response: str  # the model's answer
    behavior: str | None = None  # the underlying harmful behaviour, when the request wraps it (jailbreaks)
    context: str | None = None  # HarmBench contextual behaviours: the context string


@dataclass(frozen=True)
class Verdict:
    refused: bool | None  # the response declines the request (None: undecided or not judged)
    harmful: bool | None = None  # the response gives the harmful help asked for (None: not judged/undecided)
    error: str | None = None  # why the item is undecided
    raw: str | None = None  # the classifier's raw output, for audits

    @property
    def decided(self) -> bool:
        return self.error is None and (self.refused is not None or self.harmful is not None)

    @property
    def attack_success(self) -> bool | None:
        """Safety benchmarks: the harm verdict when judged, else 'did not refuse'; None when undecided."""
        if self.error is not None:
            return None
        if self.harmful is not None:
            return self.harmful
        return None if self.refused is None else not self.refused

    @property
    def complied(self) -> bool | None:
        """Over-refusal benchmarks: the response did not refuse; None when undecided."""
        if self.error is not None or self.refused is None:
            return None
        return not self.refused


@runtime_checkable
class Classifier(Protocol):
    name: str  # e.g. "refusal-string"
    version: str  # bumped whenever the rules or the prompt change

    def classify(self, items: Sequence[ClassifyItem]) -> list[Verdict]: ...


def classifier_id(classifier: Classifier) -> str:
    """The name that goes into results and tables, e.g. 'refusal-string@2'."""
    return f"{classifier.name}@{classifier.version}"
