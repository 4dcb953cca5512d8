"""Build the attacks a run asks for, from its config, loading each local model at most once."""

from __future__ import annotations

from advgame.config.schema import SamplingConfig
from advgame.config.source import ModelSource
from advgame.models.inference import resolve_spec
from advgame.redteam.attacks.base import Attack, Budget
from advgame.redteam.config import RedteamConfig
from advgame.targets import Loaded, Target, local_backend, source_backend

ATTACKS = ("advgame", "pair", "tap", "gcg")


def parse_attack_names(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown or not names:
        raise ValueError(
            f"unknown attack(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(ATTACKS)}"
        )
    return list(dict.fromkeys(names))


class _Models:
    """Loads each local model once (target, attacker, judge and GCG surrogate may share one); endpoints are
    not cached (each role keeps its own connection settings)."""

    def __init__(self, target: Target, source: ModelSource):
        self._cache: dict[tuple, Loaded] = {}
        if source.path and target.white_box and not source.adapter:  # an adapted target is not its base
            key = (resolve_spec(source.path), None, source.base_model)
            self._cache[key] = (target.backend, target.name, target.model, target.tokenizer)

    def get(self, source: ModelSource, player: str = "defender") -> Loaded:
        if source.url:
            return source_backend(source)
        key = (resolve_spec(source.path, player), source.adapter, source.base_model)
        if key not in self._cache:
            self._cache[key] = local_backend(key[0], adapter=source.adapter, base_model=source.base_model)
        return self._cache[key]


def _attacker_backend(models: _Models, cfg: RedteamConfig, what: str):
    if not cfg.attacker.given:
        raise ValueError(
            f"{what} needs a model: pass --attacker MODEL (or --attacker-url and --attacker-model)"
        )
    return models.get(cfg.attacker, player="attacker_ema")[0]


def build_attacks(names: list[str], cfg: RedteamConfig, target: Target) -> list[Attack]:
    from advgame.redteam.attacks.advgame_attacker import AdvGameAttack
    from advgame.redteam.attacks.attacker_lm import AttackerLM
    from advgame.redteam.attacks.pair import PairAttack
    from advgame.redteam.attacks.tap import TapAttack

    models = _Models(target, cfg.target)
    budget = Budget(max_queries=cfg.budget.max_queries, max_seconds=cfg.budget.max_seconds)
    att = cfg.attacker
    sampling = SamplingConfig(
        temperature=att.temperature, top_p=1.0, max_new_tokens=att.max_new_tokens, batch_size=16
    )
    need_llm = [n for n in names if n in ("advgame", "pair", "tap")]
    attacker = _attacker_backend(models, cfg, f"attack {need_llm[0]}") if need_llm else None
    scorer = _scorer(models, cfg) if "pair" in names or "tap" in names else None
    stop, pair, tap = cfg.judge.stop_score, cfg.pair, cfg.tap
    out: list[Attack] = []
    for name in names:
        if name == "advgame":
            out.append(
                AdvGameAttack(
                    attacker, sampling, budget, samples=att.samples, fmt=att.advgame_format, seed=cfg.seed
                )
            )
        elif name == "pair":
            lm = AttackerLM(attacker, sampling, fmt=att.format, seed=cfg.seed)
            out.append(
                PairAttack(
                    lm, scorer, budget, n_streams=pair.streams, n_iterations=pair.iterations, stop_score=stop
                )
            )
        elif name == "tap":
            lm = AttackerLM(attacker, sampling, fmt=att.format, seed=cfg.seed + 1)
            out.append(
                TapAttack(
                    lm,
                    scorer,
                    budget,
                    branching=tap.branching,
                    width=tap.width,
                    depth=tap.depth,
                    roots=tap.roots,
                    stop_score=stop,
                )
            )
        elif name == "gcg":
            out.append(_gcg(cfg, models, target, budget))
    return out


def _scorer(models: _Models, cfg: RedteamConfig):
    """The LLM scorer of PAIR and TAP when a judge model is given, else the offline heuristic one."""
    from advgame.redteam.scoring import HeuristicScorer, LLMScorer

    if not cfg.judge.given:
        return HeuristicScorer()
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=cfg.judge.max_new_tokens, batch_size=16)
    return LLMScorer(models.get(cfg.judge)[0], sampling, seed=cfg.seed)


def _gcg(cfg: RedteamConfig, models: _Models, target: Target, budget: Budget) -> Attack:
    from advgame.redteam.attacks.gcg import GcgAttack

    g, surrogate = cfg.gcg, None
    if g.surrogate:
        _, _, model, tok = models.get(ModelSource(path=g.surrogate))
        surrogate = (model, tok)
    elif not target.white_box:
        raise ValueError("attack gcg on a remote target needs a local surrogate: --gcg-surrogate MODEL")
    return GcgAttack(
        budget,
        steps=g.steps,
        search_width=g.search_width,
        topk=g.topk,
        suffix_len=g.suffix_len,
        target_template=g.target_template,
        surrogate=surrogate,
        surrogate_name=g.surrogate,
        seed=cfg.seed,
    )
