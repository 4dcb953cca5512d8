"""`advgame redteam`: run the trained Attacker, PAIR, TAP and GCG against a target.

    advgame redteam configs/redteam/example.yaml behaviors.limit=2 target.path=smollm2
    advgame redteam --target smollm2 --attacks pair,tap,gcg --behaviors harmbench --limit 5 --attacker smollm2
    advgame redteam --target-url http://127.0.0.1:8000/v1 --target-model defender \\
        --target-api-key-env ADVGAME_SERVE_TOKEN --attacks advgame --attacker RUN/final/attacker_ema

The run is a `RedteamConfig` (advgame/redteam/config.py): a YAML file, dotted key=value overrides, and
flags, each a shortcut for one key (its --help names the key). Later wins: defaults, file, overrides,
flags. Rerunning the same command with the same out dir resumes a killed run. Errors in the config, the
data or a model path print one line and exit 1.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from advgame.cli_args import NON_NEGATIVE, POSITIVE, POSITIVE_FLOAT, comma_list
from advgame.config.flags import add_config_arguments, given, load_command_config, shortcut
from advgame.redteam.config import RedteamConfig

SUMMARY = "run the trained Attacker, PAIR, TAP and GCG against a target"
EXIT_ERROR = 1
FORMATS = ["think", "nothink", "plain"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `redteam` subcommand to the `advgame` parser."""
    p = sub.add_parser(
        "redteam",
        help=SUMMARY,
        description=SUMMARY[0].upper() + SUMMARY[1:] + ". Flags are "
        "shortcuts for config keys (named in [...]); they override the CONFIG file and overrides.",
    )
    add_config_arguments(p, "configs/redteam/example.yaml")

    def flag(group, name, key, help="", **kwargs):
        shortcut(group, RedteamConfig, name, key, help, **kwargs)

    t = p.add_argument_group("target (a local model or an OpenAI-compatible endpoint)")
    flag(
        t,
        "--target",
        "target.path",
        "local model: smollm2, tiny:llama, an HF dir, an advgame RUN dir or checkpoint",
    )
    flag(t, "--target-adapter", "target.adapter", "LoRA adapter dir applied on top of --target")
    flag(t, "--target-url", "target.url", "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    flag(t, "--target-model", "target.model", "model name at --target-url")
    flag(t, "--target-api-key-env", "target.api_key_env", "env var holding the endpoint's key")
    flag(t, "--target-concurrency", "target.concurrency", "requests in flight to an endpoint", type=POSITIVE)
    flag(t, "--target-retries", "target.retries", "retries of a failed endpoint request", type=NON_NEGATIVE)
    flag(t, "--max-new-tokens", "decoding.max_new_tokens", "target reply cap", type=POSITIVE)
    flag(t, "--temperature", "decoding.temperature", "target temperature (0 = greedy)", type=float)
    a = p.add_argument_group("attacks and behaviours")
    flag(a, "--attacks", "attacks", "comma-separated: advgame, pair, tap, gcg", type=comma_list)
    flag(a, "--behaviors", "behaviors.source", "harmbench or builtin:NAME")
    flag(
        a,
        "--behaviors-file",
        "behaviors.file",
        "CSV (HarmBench schema) or JSONL {behavior_id, behavior, category}",
    )
    flag(a, "--harmbench-split", "behaviors.split", choices=["test", "val"])
    flag(
        a,
        "--functional-category",
        "behaviors.functional_category",
        "HarmBench FunctionalCategory to keep (ignored with --behaviors-file, which keeps every row)",
        choices=["standard", "contextual", "copyright", "all"],
    )
    flag(a, "--limit", "behaviors.limit", "first N behaviours only", type=POSITIVE)
    flag(a, "--classifier", "classifier", "success classifier (eval registry name)")
    flag(a, "--max-queries", "budget.max_queries", "target queries per attack and behaviour", type=POSITIVE)
    flag(a, "--max-seconds", "budget.max_seconds", "seconds per attack and behaviour", type=POSITIVE_FLOAT)
    flag(a, "--seed", "seed", type=int)
    flag(a, "--out", "out", "output dir (default runs/redteam/<target>); rerun into it to resume")
    flag(a, "--no-progress", "progress", "no progress bar", action="store_const", const=False)
    m = p.add_argument_group("attacker LLM (advgame, pair, tap) and scoring judge (pair, tap)")
    flag(m, "--attacker", "attacker.path", "attacker model: RUN/final/attacker_ema, smollm2, an HF dir ...")
    flag(m, "--attacker-url", "attacker.url", "attacker at an OpenAI-compatible endpoint instead")
    flag(m, "--attacker-model", "attacker.model", "model name at --attacker-url")
    flag(m, "--attacker-api-key-env", "attacker.api_key_env")
    flag(m, "--attacker-max-new-tokens", "attacker.max_new_tokens", type=POSITIVE)
    flag(m, "--attacker-temperature", "attacker.temperature", type=float)
    flag(m, "--attacker-format", "attacker.format", "PAIR/TAP attacker answer layout", choices=FORMATS)
    flag(
        m,
        "--advgame-format",
        "attacker.advgame_format",
        "the trained Attacker's format (as in its training config: game.attacker_format)",
        choices=FORMATS,
    )
    flag(m, "--samples", "attacker.samples", "advgame: rewrites per behaviour", type=POSITIVE)
    flag(
        m,
        "--judge-model",
        "judge.path",
        "1-10 scorer: a local model, or with --judge-url the model name there "
        "(judge.model); default: the offline heuristic scorer",
    )
    flag(m, "--judge-url", "judge.url", "scorer at an OpenAI-compatible endpoint")
    flag(m, "--judge-api-key-env", "judge.api_key_env")
    flag(m, "--judge-max-new-tokens", "judge.max_new_tokens", type=POSITIVE)
    flag(m, "--stop-score", "judge.stop_score", "PAIR/TAP stop when a rating reaches this", type=float)
    s = p.add_argument_group("attack sizes")
    flag(s, "--pair-streams", "pair.streams", type=POSITIVE)
    flag(s, "--pair-iterations", "pair.iterations", type=POSITIVE)
    flag(s, "--tap-branching", "tap.branching", type=POSITIVE)
    flag(s, "--tap-width", "tap.width", type=POSITIVE)
    flag(s, "--tap-depth", "tap.depth", type=POSITIVE)
    flag(s, "--tap-roots", "tap.roots", type=POSITIVE)
    flag(s, "--gcg-steps", "gcg.steps", type=POSITIVE)
    flag(s, "--gcg-search-width", "gcg.search_width", type=POSITIVE)
    flag(s, "--gcg-topk", "gcg.topk", type=POSITIVE)
    flag(s, "--gcg-suffix-len", "gcg.suffix_len", type=POSITIVE)
    flag(
        s,
        "--gcg-surrogate",
        "gcg.surrogate",
        "local white-box model to optimise GCG on (needed for remote targets)",
    )
    flag(
        s,
        "--gcg-target-template",
        "gcg.target_template",
        "GCG target string; {behavior} is the behaviour text",
    )
    p.set_defaults(run=run)


def _flag_values(args: argparse.Namespace) -> dict:
    """The flags given, as dotted keys; --judge-model names the model at --judge-url when both are given."""
    values = given(args)
    if "judge.url" in values and "judge.path" in values:
        values["judge.model"] = values.pop("judge.path")
    return values


ENDPOINT_ONLY = {"concurrency", "retries", "timeout_s"}


def _settings(cfg: RedteamConfig, names: list[str]) -> dict:
    """What must not change between a run and its resumption (the limit may grow, endpoints may be tuned)."""
    exclude = {
        "progress": True,
        "out": True,
        "attacks": True,
        "behaviors": {"limit"},
        **{role: ENDPOINT_ONLY for role in ("target", "attacker", "judge")},
    }
    return {**cfg.model_dump(mode="json", exclude=exclude), "attacks": names}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "target"


def run(args: argparse.Namespace) -> int:
    cfg = load_command_config("redteam", RedteamConfig, args, _flag_values(args))
    return EXIT_ERROR if cfg is None else run_config(cfg)


def run_config(cfg: RedteamConfig) -> int:
    from rich.console import Console

    from advgame.config.schema import SamplingConfig
    from advgame.eval.classifiers import build_classifier
    from advgame.models.gguf import ModelNotFoundError
    from advgame.redteam.behaviors import BehaviorDataError, load_behaviors
    from advgame.redteam.build import build_attacks, parse_attack_names
    from advgame.redteam.runner import SettingsMismatch, check_settings, run_redteam
    from advgame.redteam.summary import markdown_table, rich_table
    from advgame.targets import load_target

    console = Console(stderr=True)
    b = cfg.behaviors
    try:
        if bool(cfg.target.path) == bool(cfg.target.url):
            raise ValueError(
                "give exactly one of --target MODEL or --target-url URL (with --target-model); "
                "keys target.path, target.url"
            )
        names = parse_attack_names(",".join(cfg.attacks))
        classifier = build_classifier(cfg.classifier)
        behaviors = load_behaviors(
            b.source, file=b.file, split=b.split, functional=b.functional_category, limit=b.limit
        )
        target_name = cfg.target.path or cfg.target.model or "endpoint"
        out = Path(cfg.out or Path("runs") / "redteam" / _slug(target_name))
        from advgame.paths import writable_dir_problem

        if problem := writable_dir_problem(out):
            raise ValueError(f"--out: {problem}")
        check_settings(out, _settings(cfg, names))
        sampling = SamplingConfig(
            temperature=cfg.decoding.temperature,
            top_p=1.0,
            max_new_tokens=cfg.decoding.max_new_tokens,
            batch_size=16,
        )
        target = load_target(cfg.target, sampling=sampling, seed=cfg.seed)
        attacks = build_attacks(names, cfg, target)
    except (ValueError, ModelNotFoundError, BehaviorDataError, SettingsMismatch) as e:
        print(f"advgame redteam: {e}", file=sys.stderr)  # plain: rich would read [..] in paths as markup
        return EXIT_ERROR
    summary = run_redteam(
        target,
        attacks,
        behaviors,
        classifier,
        out,
        behaviors_name=b.file or b.source,
        progress=cfg.progress,
        console=console,
    )
    Console().print(rich_table(summary))
    print(markdown_table(summary), end="")
    print(f"attempts: {out / 'attempts.jsonl'}\nsummary: {out / 'summary.json'}")
    return 0
