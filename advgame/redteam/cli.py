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
from advgame.config.flags import add_command, given, load_command_config
from advgame.redteam.config import RedteamConfig

SUMMARY = "run the trained Attacker, PAIR, TAP and GCG against a target"
EXIT_ERROR = 1
FORMATS = ["think", "nothink", "plain"]
CATEGORIES = ["standard", "contextual", "copyright", "all"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `redteam` subcommand to the `advgame` parser."""
    p, flag = add_command(sub, "redteam", SUMMARY, RedteamConfig, "configs/redteam/example.yaml")
    t = p.add_argument_group("target (one of --target or --target-url)")
    flag(t, "--target", "target.path")
    flag(t, "--target-adapter", "target.adapter")
    flag(t, "--target-url", "target.url")
    flag(t, "--target-model", "target.model")
    flag(t, "--target-api-key-env", "target.api_key_env")
    flag(t, "--target-concurrency", "target.concurrency", type=POSITIVE)
    flag(t, "--target-retries", "target.retries", type=NON_NEGATIVE)
    flag(t, "--max-new-tokens", "decoding.max_new_tokens", type=POSITIVE)
    flag(t, "--temperature", "decoding.temperature", type=float)
    a = p.add_argument_group("attacks and behaviours")
    flag(a, "--attacks", "attacks", "comma-separated: advgame, pair, tap, gcg", type=comma_list)
    flag(a, "--behaviors", "behaviors.source")
    flag(a, "--behaviors-file", "behaviors.file")
    flag(a, "--harmbench-split", "behaviors.split", choices=["test", "val"])
    flag(a, "--functional-category", "behaviors.functional_category", choices=CATEGORIES)
    flag(a, "--limit", "behaviors.limit", type=POSITIVE)
    flag(a, "--classifier", "classifier")
    flag(a, "--max-queries", "budget.max_queries", type=POSITIVE)
    flag(a, "--max-seconds", "budget.max_seconds", type=POSITIVE_FLOAT)
    flag(a, "--seed", "seed", type=int)
    flag(a, "--out", "out")
    flag(a, "--no-progress", "progress", "no progress bar", action="store_const", const=False)
    m = p.add_argument_group("attacker LLM (advgame, pair, tap) and scoring judge (pair, tap)")
    flag(m, "--attacker", "attacker.path")
    flag(m, "--attacker-url", "attacker.url")
    flag(m, "--attacker-model", "attacker.model")
    flag(m, "--attacker-api-key-env", "attacker.api_key_env")
    flag(m, "--attacker-max-new-tokens", "attacker.max_new_tokens", type=POSITIVE)
    flag(m, "--attacker-temperature", "attacker.temperature", type=float)
    flag(m, "--attacker-format", "attacker.format", choices=FORMATS)
    flag(m, "--advgame-format", "attacker.advgame_format", choices=FORMATS)
    flag(m, "--samples", "attacker.samples", type=POSITIVE)
    flag(
        m,
        "--judge-model",
        "judge.path",
        "1-10 scorer: a local model, or with --judge-url the model "
        "name there (judge.model); none: the offline heuristic scorer",
    )
    flag(m, "--judge-url", "judge.url")
    flag(m, "--judge-api-key-env", "judge.api_key_env")
    flag(m, "--judge-max-new-tokens", "judge.max_new_tokens", type=POSITIVE)
    flag(m, "--stop-score", "judge.stop_score", type=float)
    s = p.add_argument_group("attack sizes")
    for name in (
        "pair.streams",
        "pair.iterations",
        "tap.branching",
        "tap.width",
        "tap.depth",
        "tap.roots",
        "gcg.steps",
        "gcg.search_width",
        "gcg.topk",
        "gcg.suffix_len",
    ):
        flag(s, "--" + name.replace(".", "-").replace("_", "-"), name, type=POSITIVE)
    flag(s, "--gcg-surrogate", "gcg.surrogate")
    flag(s, "--gcg-target-template", "gcg.target_template")
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
