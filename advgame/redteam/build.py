"""Build the attacks a run asks for, from the command-line options, loading each model at most once."""

from __future__ import annotations

import argparse

from advgame.config.schema import SamplingConfig
from advgame.models.inference import resolve_spec
from advgame.redteam.attacks.base import Attack, Budget
from advgame.redteam.targets import Target, build_backend

ATTACKS = ("advgame", "pair", "tap", "gcg")


def parse_attack_names(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown or not names:
        raise ValueError(f"unknown attack(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(ATTACKS)}")
    return list(dict.fromkeys(names))


class _Models:
    """Loads each local model spec once (attacker, judge and GCG surrogate may share one)."""

    def __init__(self, target: Target, target_spec: str | None, target_adapter: str | None):
        self._cache: dict[str, tuple] = {}
        if target_spec and target.white_box and not target_adapter:  # an adapted target is not its base
            self._cache[resolve_spec(target_spec)] = (target.backend, target.name, target.model, target.tokenizer)

    def get(self, spec: str, player: str = "defender") -> tuple:
        key = resolve_spec(spec, player)
        if key not in self._cache:
            self._cache[key] = build_backend(key)
        return self._cache[key]


def _llm_backend(models: _Models, spec, url, model, key_env, what: str, args):
    if url:
        return build_backend(url=url, model=model, api_key_env=key_env, concurrency=args.target_concurrency,
                             retries=args.target_retries)[0]
    if not spec:
        raise ValueError(f"{what} needs a model: pass --attacker MODEL (or --attacker-url and --attacker-model)")
    return models.get(spec, player="attacker_ema")[0]


def build_attacks(names: list[str], args: argparse.Namespace, target: Target) -> list[Attack]:
    from advgame.redteam.attacks.advgame_attacker import AdvGameAttack
    from advgame.redteam.attacks.attacker_lm import AttackerLM
    from advgame.redteam.attacks.gcg import GcgAttack
    from advgame.redteam.attacks.pair import PairAttack
    from advgame.redteam.attacks.tap import TapAttack

    models = _Models(target, args.target, args.target_adapter)
    budget = Budget(max_queries=args.max_queries, max_seconds=args.max_seconds)
    attacker_sampling = SamplingConfig(temperature=args.attacker_temperature, top_p=1.0,
                                       max_new_tokens=args.attacker_max_new_tokens, batch_size=16)
    need_llm = [n for n in names if n in ("advgame", "pair", "tap")]
    attacker = None
    if need_llm:
        attacker = _llm_backend(models, args.attacker, args.attacker_url, args.attacker_model,
                                args.attacker_api_key_env, f"attack {need_llm[0]}", args)
    scorer = None
    if "pair" in names or "tap" in names:
        from advgame.redteam.scoring import HeuristicScorer, LLMScorer

        if args.judge_url or args.judge_model:
            judge = (build_backend(url=args.judge_url, model=args.judge_model, api_key_env=args.judge_api_key_env)[0]
                     if args.judge_url else models.get(args.judge_model)[0])
            scorer = LLMScorer(judge, SamplingConfig(temperature=0.0, max_new_tokens=args.judge_max_new_tokens,
                                                     batch_size=16), seed=args.seed)
        else:
            scorer = HeuristicScorer()
    out: list[Attack] = []
    for name in names:
        if name == "advgame":
            out.append(AdvGameAttack(attacker, attacker_sampling, budget, samples=args.samples,
                                     fmt=args.advgame_format, seed=args.seed))
        elif name == "pair":
            lm = AttackerLM(attacker, attacker_sampling, fmt=args.attacker_format, seed=args.seed)
            out.append(PairAttack(lm, scorer, budget, n_streams=args.pair_streams, n_iterations=args.pair_iterations,
                                  stop_score=args.stop_score))
        elif name == "tap":
            lm = AttackerLM(attacker, attacker_sampling, fmt=args.attacker_format, seed=args.seed + 1)
            out.append(TapAttack(lm, scorer, budget, branching=args.tap_branching, width=args.tap_width,
                                 depth=args.tap_depth, roots=args.tap_roots, stop_score=args.stop_score))
        elif name == "gcg":
            surrogate, surrogate_name = None, None
            if args.gcg_surrogate:
                _, _, model, tok = models.get(args.gcg_surrogate)
                surrogate_name = args.gcg_surrogate
                surrogate = (model, tok)
            elif not target.white_box:
                raise ValueError("attack gcg on a remote target needs a local surrogate: --gcg-surrogate MODEL")
            out.append(GcgAttack(budget, steps=args.gcg_steps, search_width=args.gcg_search_width,
                                 topk=args.gcg_topk, suffix_len=args.gcg_suffix_len,
                                 target_template=args.gcg_target_template, surrogate=surrogate,
                                 surrogate_name=surrogate_name, seed=args.seed))
    return out
