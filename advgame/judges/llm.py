"""An LLM judge on top of any GenerationBackend (in-process HF model or OpenAI-compatible endpoint).

Each method builds its prompts with `rubrics` and asks them through `JudgeAsker` (`advgame.judges.asking`:
one backend batch, strict parsing with `parsing`, failures counted in `stats` by reason). Every item gets a
value or None (a failed judgment, never a win for anyone).

Order swap (`order_swap=True`): each pair is judged as (A, B) and as (B, A) in the same batch, and each
candidate's two scores are averaged, which cancels the judge's position bias. The item is None if either
order fails (its reason is that of the first failing order); it counts as one call.

Reproducibility: fence nonces and the backend's sampling seeds come from a `random.Random(seed)`, so two
judges built with the same seed ask the same prompts with the same seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from advgame.backends.base import GenerationBackend
from advgame.config.schema import SamplingConfig
from advgame.judges import rubrics
from advgame.judges.asking import Answer, JudgeAsker
from advgame.judges.base import FaithItem, PairItem, PointItem
from advgame.judges.parsing import parse_faithful, parse_pair_scores, parse_point_score


class LLMJudge:
    """Judge protocol implemented by prompting an LM; see the module docstring."""

    def __init__(
        self,
        backend: GenerationBackend,
        sampling: SamplingConfig,
        name: str | None = None,
        order_swap: bool = False,
        seed: int | None = None,
    ):
        self.asker = JudgeAsker(backend, sampling, seed)
        self.backend, self.sampling, self.stats = backend, sampling, self.asker.stats
        self.order_swap = order_swap
        self.name = name or f"llm:{backend.name}" + (":swap" if order_swap else "")

    def __repr__(self) -> str:
        return f"LLMJudge(name={self.name!r}, order_swap={self.order_swap})"

    def rng_state(self) -> list:
        """The nonce/seed generator's state (JSON-able), so a resumed run asks exactly the same prompts."""
        return self.asker.rng_state()

    def set_rng_state(self, state: list) -> None:
        self.asker.set_rng_state(state)

    # --- the Judge protocol ----------------------------------------------------------------------------

    def faithful(self, items: Sequence[FaithItem]) -> list[bool | None]:
        renders = [partial(rubrics.faithfulness_prompt, i.category, i.seed, i.prompt) for i in items]
        return [a.value for a in self.asker.ask(renders, parse_faithful)]

    def score_points(self, items: Sequence[PointItem]) -> list[float | None]:
        renders = [partial(rubrics.pointwise_prompt, i.rubric, i.query, i.response) for i in items]
        return [a.value for a in self.asker.ask(renders, parse_point_score)]

    def score_pairs(self, items: Sequence[PairItem]) -> list[tuple[float, float] | None]:
        if not self.order_swap:
            renders = [
                partial(rubrics.pairwise_prompt, i.rubric, i.query, i.response_a, i.response_b) for i in items
            ]
            return [a.value for a in self.asker.ask(renders, parse_pair_scores)]
        renders = [
            partial(rubrics.pairwise_prompt, i.rubric, i.query, a, b)
            for i in items
            for a, b in ((i.response_a, i.response_b), (i.response_b, i.response_a))
        ]
        answers = self.asker.ask(renders, parse_pair_scores, count=False)
        return [self._swapped(ab, ba) for ab, ba in zip(answers[0::2], answers[1::2], strict=True)]

    def _swapped(self, ab: Answer, ba: Answer) -> tuple[float, float] | None:
        """One item judged in both orders: the averaged scores, or None; recorded as one call."""
        failure = ab.failure or ba.failure
        self.stats.record(failure)
        if failure is not None:
            return None
        (a1, b1), (b2, a2) = ab.value, ba.value
        return (a1 + a2) / 2, (b1 + b2) / 2
