"""Classifiers that decide refusal / attack success; `build_classifier(name)` makes one by name.

refusal-string                         string matching (offline, no model): refusal-string@3, the project's
                                       one refusal matcher (advgame.judges.refusal, docs/classifiers.md)
llm-judge                              3-question rubric over any backend (`backend=` required)
harmbench-cls, wildguard, llama-guard-3  open guard models (`path=` a local dir, else the hub)
"""

from __future__ import annotations

from functools import partial

from advgame.eval.classifiers.base import Classifier, ClassifyItem, Verdict, classifier_id
from advgame.eval.classifiers.guards import GuardClassifier, GuardUnavailable
from advgame.eval.classifiers.llm_judge import LLMJudgeClassifier
from advgame.eval.classifiers.refusal_string import RefusalStringClassifier

__all__ = [
    "CLASSIFIERS",
    "Classifier",
    "ClassifyItem",
    "GuardUnavailable",
    "Verdict",
    "build_classifier",
    "classifier_id",
]

CLASSIFIERS = {
    "refusal-string": RefusalStringClassifier,
    "llm-judge": LLMJudgeClassifier,
    "harmbench-cls": partial(GuardClassifier, "harmbench-cls"),
    "wildguard": partial(GuardClassifier, "wildguard"),
    "llama-guard-3": partial(GuardClassifier, "llama-guard-3"),
}


def build_classifier(name: str, **options) -> Classifier:
    """A classifier by registry name; unknown names fail naming the known ones."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier '{name}'; known: {', '.join(sorted(CLASSIFIERS))}")
    return CLASSIFIERS[name](**options)
