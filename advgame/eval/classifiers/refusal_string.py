"""Refusal detection by string matching (the XSTest / GCG style), on the heuristic judge's phrase lists.

It only says whether a response refuses; on safety benchmarks 'did not refuse' counts as attack success,
which over-counts success for off-topic or useless answers (documented, as in the GCG evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

from advgame.eval.classifiers.base import ClassifyItem, Verdict
from advgame.judges.heuristic import is_refusal


class RefusalStringClassifier:
    name = "refusal-string"
    version = "1"

    def classify(self, items: Sequence[ClassifyItem]) -> list[Verdict]:
        out = []
        for item in items:
            if not item.response.strip():
                out.append(Verdict(refused=None, error="empty response"))
            else:
                out.append(Verdict(refused=is_refusal(item.response)))
        return out
