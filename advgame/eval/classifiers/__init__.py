"""Classifiers that decide refusal / attack success; `build_classifier(name)` makes one by name."""

from __future__ import annotations

from advgame.eval.classifiers.base import Classifier, ClassifyItem, Verdict, classifier_id
from advgame.eval.classifiers.refusal_string import RefusalStringClassifier

__all__ = ["CLASSIFIERS", "Classifier", "ClassifyItem", "Verdict", "build_classifier", "classifier_id"]

CLASSIFIERS = {"refusal-string": RefusalStringClassifier}


def build_classifier(name: str, **options) -> Classifier:
    """A classifier by registry name; unknown names fail naming the known ones."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier '{name}'; known: {', '.join(sorted(CLASSIFIERS))}")
    return CLASSIFIERS[name](**options)
