"""Ask an LM to judge a batch: the one loop behind every LLM judge of the project.

The game's judges (`advgame.judges.llm`), eval's `llm-judge` classifier and redteam's PAIR/TAP scorer all
ask through `JudgeAsker.ask(renders, parse)`:

  1. render: each prompt is `render(nonce)`, with a fresh per-prompt nonce drawn here, so that the
     untrusted text the render fences sits between fences its author cannot forge (`advgame.judges.rubrics`:
     `fence` neutralises and fences a field, `reminder` and `user_message` close and wrap the prompt);
  2. call: one `backend.generate` batch. Retries belong to the backend (an endpoint retries timeouts,
     connection errors, 429 and 5xx itself, `advgame.backends.endpoint_pool`); what still fails comes back
     as a Completion with `error` set, never as an exception mid-batch;
  3. parse: the caller's strict parser (`advgame.judges.parsing`, ...), which returns None for anything
     doubtful;
  4. count: each answer is one call in `stats`, with the reason of any failure:

        <error>      the backend could not get an answer (Completion.error: 'timeout', 'http_500', ...)
        truncated    the judgment hit the generation cap (even if the tags were already there)
        parse        the output did not follow the format

A failed answer has `value` None, so no caller can score it as a win for anyone.

Reproducibility: nonces and the backend's sampling seeds come from `random.Random(seed)`; two askers built
with the same seed ask the same prompts with the same seeds. With `seed=None` they come from the OS and
the backend gets no seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from advgame.backends.base import GenerationBackend
from advgame.config.schema import SamplingConfig
from advgame.judges.base import JudgeStats
from advgame.policy.chat import Prompt
from advgame.policy.sampling import Completion

T = TypeVar("T")
Render = Callable[[str], Prompt]  # nonce -> the prompt, its untrusted fields fenced with that nonce


@dataclass(frozen=True)
class Answer(Generic[T]):
    """One judged prompt: the parsed value, or None and why (`failure`); `raw` is the judge's text."""

    value: T | None
    failure: str | None = None
    raw: str | None = None


class JudgeAsker:
    """Renders, sends, parses and counts judge prompts; see the module docstring."""

    def __init__(self, backend: GenerationBackend, sampling: SamplingConfig, seed: int | None = None):
        self.backend = backend
        self.sampling = sampling
        self.stats = JudgeStats()
        self._rng = random.Random(seed)
        self._seeded = seed is not None

    def rng_state(self) -> list:
        """The nonce/seed generator's state (JSON-able), so a resumed run asks exactly the same prompts."""
        version, internal, gauss = self._rng.getstate()
        return [version, list(internal), gauss]

    def set_rng_state(self, state: list) -> None:
        self._rng.setstate((state[0], tuple(state[1]), state[2]))

    def ask(
        self, renders: Sequence[Render], parse: Callable[[str], T | None], *, count: bool = True
    ) -> list[Answer[T]]:
        """One backend batch, one Answer per render, in order. With `count=False` the caller records the
        answers in `stats` itself (e.g. one record for the two orders of a swapped pair)."""
        if not renders:
            return []
        prompts = [render(self._nonce()) for render in renders]
        seed = self._rng.randrange(2**31) if self._seeded else None
        outs = self.backend.generate(prompts, self.sampling, num_samples=1, seed=seed)
        if len(outs) != len(prompts):
            raise RuntimeError(f"{self.backend.name}: {len(outs)} completions for {len(prompts)} prompts")
        answers = [judge_one(out, parse) for out in outs]
        if count:
            for answer in answers:
                self.stats.record(answer.failure)
        return answers

    def _nonce(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"


def judge_one(out: Completion, parse: Callable[[str], T | None]) -> Answer[T]:
    """A completion read strictly: a backend error, then truncation, then the parser's None, is a failure."""
    if out.error:
        return Answer(None, out.error, out.text or None)
    if out.truncated:
        return Answer(None, "truncated", out.text)
    value = parse(out.text)
    return Answer(None, "parse", out.text) if value is None else Answer(value, None, out.text)
