"""Scripted stand-ins for the game's judges and generators: known outputs, recorded inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from advgame.backends.weight_sync import EngineSync
from advgame.config.schema import RunConfig
from advgame.game.step import Game
from advgame.judges.base import FaithItem, Judge, JudgeStats, PairItem, PointItem
from advgame.policy.chat import encode_prompts, eos_ids
from advgame.policy.sampling import Completion
from advgame.train.setup import build_judges, build_players, game_judges


class ScriptedJudge:
    """A judge whose verdicts come from functions of the judged text (None = a failed judgment)."""

    name = "scripted"

    def __init__(
        self,
        score: Callable[[str, str, str], float | None] = lambda rubric, query, response: 5.0,
        faithful: Callable[[str, str], bool | None] = lambda seed, prompt: True,
    ):
        self._score, self._faithful = score, faithful
        self.stats = JudgeStats()
        self.seen_pairs: list[PairItem] = []
        self.seen_points: list[PointItem] = []
        self.seen_faith: list[FaithItem] = []

    def _record(self, value):
        self.stats.record(None if value is not None else "scripted_failure")
        return value

    def faithful(self, items: Sequence[FaithItem]) -> list[bool | None]:
        self.seen_faith += items
        return [self._record(self._faithful(i.seed, i.prompt)) for i in items]

    def score_pairs(self, items: Sequence[PairItem]) -> list[tuple[float, float] | None]:
        self.seen_pairs += items
        out = []
        for i in items:
            a, b = self._score(i.rubric, i.query, i.response_a), self._score(i.rubric, i.query, i.response_b)
            out.append(self._record(None if a is None or b is None else (a, b)))
        return out

    def score_points(self, items: Sequence[PointItem]) -> list[float | None]:
        self.seen_points += items
        return [self._record(self._score(i.rubric, i.query, i.response)) for i in items]


class ScriptedBackend:
    """A generator that answers each prompt with scripted texts, and records what it was asked.

    With a tokenizer, prompt and completion ids are the real chat-templated ids, so a real model can be
    trained on the scripted samples; without one, ids are placeholders.
    """

    name = "scripted"

    def __init__(self, reply: Callable[[str, int], str | tuple[str, bool]], tokenizer=None):
        self.reply = reply  # (prompt text, sample index) -> text, or (text, truncated)
        self.tokenizer = tokenizer
        self.prompts: list[str] = []
        self.seeds: list[int | None] = []

    def generate(
        self, prompts, sampling, *, num_samples=1, seed=None, return_logprobs=False
    ) -> list[Completion]:
        self.seeds.append(seed)
        out = []
        for p in prompts:
            text_in = p if isinstance(p, str) else p[-1]["content"]
            self.prompts.append(text_in)
            prompt_ids = encode_prompts(self.tokenizer, [p])[0] if self.tokenizer else [1, 2]
            for k in range(num_samples):
                r = self.reply(text_in, k)
                text, truncated = r if isinstance(r, tuple) else (r, False)
                if self.tokenizer:
                    ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                    ids = ids if truncated else ids + [eos_ids(self.tokenizer)[0]]
                else:
                    ids = [ord(ch) % 97 + 3 for ch in text][:50] or [3]
                logprobs = [-1.0] * len(ids) if return_logprobs else None
                out.append(
                    Completion(
                        prompt_ids=prompt_ids,
                        token_ids=ids,
                        text=text,
                        truncated=truncated,
                        logprobs=logprobs,
                    )
                )
        return out


def scripted_game(
    cfg: RunConfig,
    judges: Mapping[str, Judge] | None = None,
    backends: Mapping[str, object] | None = None,
    engines: Mapping[str, object] | None = None,
) -> Game:
    """The players of `cfg` (real tiny models that train), with the test's parts where given: `judges`
    (role -> judge for faithfulness, defender and attacker; the configured ones otherwise), `backends`
    (role -> generator) and `engines` (role -> generator that holds its own copy of the weights, which the
    player syncs like a vLLM engine)."""
    attacker, defender = build_players(cfg)
    players = {"attacker": attacker, "defender": defender}
    for role, backend in (backends or {}).items():
        players[role].backend = backend
    for role, engine in (engines or {}).items():
        players[role].backend = engine
        players[role].engine_sync = EngineSync(engine, players[role].name)
    if judges is None:
        parts = build_judges(cfg, attacker, defender)
    else:
        parts = game_judges(cfg, judges["faithfulness"], judges["defender"], judges.get("attacker"))
    return Game(cfg=cfg, attacker=attacker, defender=defender, judges=parts)
