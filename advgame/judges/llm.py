"""An LLM judge on top of any GenerationBackend (in-process HF model or OpenAI-compatible endpoint).

Each method builds its prompts with `rubrics`, sends them to the backend in one `generate` batch, and parses
the outputs with `parsing`. Every item gets a value or None, and `stats` records one call per item with the
reason of any failure:

    <error>      the backend could not get an answer (Completion.error: 'timeout', 'http_500', ...)
    truncated    the judgment hit the generation cap (even if tags were already there)
    parse        the output did not follow the format (see `parsing`)

Order swap (`order_swap=True`): each pair is judged as (A, B) and as (B, A) in the same batch, and each
candidate's two scores are averaged, which cancels the judge's position bias. The item is None if either
order fails (its reason is that of the first failing order).

Reproducibility: fence nonces and the backend's sampling seeds come from a `random.Random(seed)`, so two
judges built with the same seed ask the same prompts with the same seeds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from advgame.backends.base import GenerationBackend
from advgame.config.schema import SamplingConfig
from advgame.judges import rubrics
from advgame.judges.base import FaithItem, JudgeStats, PairItem, PointItem
from advgame.judges.parsing import parse_faithful, parse_pair_scores, parse_point_score
from advgame.policy.sampling import Completion

T = TypeVar("T")


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
        self.backend = backend
        self.sampling = sampling
        self.order_swap = order_swap
        self.name = name or f"llm:{backend.name}" + (":swap" if order_swap else "")
        self.stats = JudgeStats()
        self._rng = random.Random(seed)
        self._seeded = seed is not None

    def __repr__(self) -> str:
        return f"LLMJudge(name={self.name!r}, order_swap={self.order_swap})"

    def rng_state(self) -> list:
        """The nonce/seed generator's state (JSON-able), so a resumed run asks exactly the same prompts."""
        version, internal, gauss = self._rng.getstate()
        return [version, list(internal), gauss]

    def set_rng_state(self, state: list) -> None:
        self._rng.setstate((state[0], tuple(state[1]), state[2]))

    # --- the Judge protocol ----------------------------------------------------------------------------

    def faithful(self, items: Sequence[FaithItem]) -> list[bool | None]:
        prompts = [rubrics.faithfulness_prompt(i.category, i.seed, i.prompt, self._nonce()) for i in items]
        return [self._finish(*v) for v in self._ask(prompts, parse_faithful)]

    def score_points(self, items: Sequence[PointItem]) -> list[float | None]:
        prompts = [rubrics.pointwise_prompt(i.rubric, i.query, i.response, self._nonce()) for i in items]
        return [self._finish(*v) for v in self._ask(prompts, parse_point_score)]

    def score_pairs(self, items: Sequence[PairItem]) -> list[tuple[float, float] | None]:
        prompts, orders = [], 2 if self.order_swap else 1
        for i in items:
            for a, b in [(i.response_a, i.response_b), (i.response_b, i.response_a)][:orders]:
                prompts.append(rubrics.pairwise_prompt(i.rubric, i.query, a, b, self._nonce()))
        results = self._ask(prompts, parse_pair_scores)
        if not self.order_swap:
            return [self._finish(*v) for v in results]
        out = []
        for ab, ba in zip(results[0::2], results[1::2], strict=True):
            failure = ab[1] or ba[1]
            if failure is not None:
                out.append(self._finish(None, failure))
            else:
                (a1, b1), (b2, a2) = ab[0], ba[0]
                out.append(self._finish(((a1 + a2) / 2, (b1 + b2) / 2), None))
        return out

    # --- internals -------------------------------------------------------------------------------------

    def _nonce(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"

    def _ask(self, prompts: list, parse: Callable[[str], T | None]) -> list[tuple[T | None, str | None]]:
        """One backend batch; per prompt (value, None) or (None, failure reason)."""
        if not prompts:
            return []
        seed = self._rng.randrange(2**31) if self._seeded else None
        outs = self.backend.generate(prompts, self.sampling, num_samples=1, seed=seed)
        if len(outs) != len(prompts):
            raise RuntimeError(f"{self.backend.name}: {len(outs)} completions for {len(prompts)} prompts")
        return [_judge_one(out, parse) for out in outs]

    def _finish(self, value: T | None, reason: str | None) -> T | None:
        """Record one judged item in `stats` and return its value (None on failure)."""
        self.stats.record(reason)
        return None if reason is not None else value


def _judge_one(out: Completion, parse: Callable[[str], T | None]) -> tuple[T | None, str | None]:
    if out.error:
        return None, out.error
    if out.truncated:
        return None, "truncated"
    value = parse(out.text)
    return (None, "parse") if value is None else (value, None)
