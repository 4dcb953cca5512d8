"""`advgame redteam`: run the trained Attacker, PAIR, TAP and GCG against a target.

    advgame redteam --target smollm2 --attacks pair,tap,gcg --behaviors harmbench --limit 5 --attacker smollm2
    advgame redteam --target-url http://127.0.0.1:8000/v1 --target-model defender \\
        --target-api-key-env ADVGAME_SERVE_TOKEN --attacks advgame --attacker RUN/final/attacker_ema

Rerunning the same command with the same --out resumes a killed run. Errors in the arguments, the data
or a model path print one line and exit 1.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from advgame.cli_args import NON_NEGATIVE, POSITIVE, POSITIVE_FLOAT

SUMMARY = "run the trained Attacker, PAIR, TAP and GCG against a target"
EXIT_ERROR = 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `redteam` subcommand to the `advgame` parser."""
    p = sub.add_parser("redteam", help=SUMMARY, description=SUMMARY[0].upper() + SUMMARY[1:] + ".",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t = p.add_argument_group("target (a local model or an OpenAI-compatible endpoint)")
    t.add_argument("--target", help="local model: smollm2, tiny:llama, an HF dir, an advgame RUN dir or checkpoint")
    t.add_argument("--target-adapter", help="LoRA adapter dir applied on top of --target")
    t.add_argument("--target-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    t.add_argument("--target-model", help="model name at --target-url")
    t.add_argument("--target-api-key-env", default="OPENAI_API_KEY", help="env var holding the endpoint's key")
    t.add_argument("--target-concurrency", type=POSITIVE, default=4, help="requests in flight to an endpoint")
    t.add_argument("--target-retries", type=NON_NEGATIVE, default=3, help="retries of a failed endpoint request")
    t.add_argument("--max-new-tokens", type=POSITIVE, default=128, help="target reply cap")
    t.add_argument("--temperature", type=float, default=0.0, help="target temperature (0 = greedy)")
    a = p.add_argument_group("attacks and behaviours")
    a.add_argument("--attacks", default="advgame,pair,tap,gcg", help="comma-separated: advgame, pair, tap, gcg")
    a.add_argument("--behaviors", default="harmbench", help="harmbench or builtin:NAME")
    a.add_argument("--behaviors-file", help="CSV (HarmBench schema) or JSONL {behavior_id, behavior, category}")
    a.add_argument("--harmbench-split", default="test", choices=["test", "val"])
    a.add_argument("--functional-category", default="standard", choices=["standard", "contextual", "copyright", "all"],
                   help="HarmBench FunctionalCategory to keep (ignored with --behaviors-file, which keeps every row)")
    a.add_argument("--limit", type=POSITIVE, help="first N behaviours only")
    a.add_argument("--classifier", default="refusal-string", help="success classifier (eval registry name)")
    a.add_argument("--max-queries", type=POSITIVE, default=20, help="target queries per attack and behaviour")
    a.add_argument("--max-seconds", type=POSITIVE_FLOAT, default=300.0, help="seconds per attack and behaviour")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", help="output dir; None means runs/redteam/<target>. Rerun into it to resume")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    m = p.add_argument_group("attacker LLM (advgame, pair, tap) and scoring judge (pair, tap)")
    m.add_argument("--attacker", help="attacker model: RUN/final/attacker_ema, smollm2, an HF dir ...")
    m.add_argument("--attacker-url", help="attacker at an OpenAI-compatible endpoint instead")
    m.add_argument("--attacker-model", help="model name at --attacker-url")
    m.add_argument("--attacker-api-key-env", default="OPENAI_API_KEY")
    m.add_argument("--attacker-max-new-tokens", type=POSITIVE, default=256)
    m.add_argument("--attacker-temperature", type=float, default=1.0)
    m.add_argument("--attacker-format", default="nothink", choices=["think", "nothink", "plain"],
                   help="PAIR/TAP attacker answer layout")
    m.add_argument("--advgame-format", default="nothink", choices=["think", "nothink", "plain"],
                   help="the trained Attacker's format (as in its training config: game.attacker_format)")
    m.add_argument("--samples", type=POSITIVE, default=4, help="advgame: rewrites per behaviour")
    m.add_argument("--judge-model", help="1-10 scorer: a local model, or the model name at --judge-url "
                                         "(default: the offline heuristic scorer)")
    m.add_argument("--judge-url", help="scorer at an OpenAI-compatible endpoint")
    m.add_argument("--judge-api-key-env", default="OPENAI_API_KEY")
    m.add_argument("--judge-max-new-tokens", type=POSITIVE, default=256)
    m.add_argument("--stop-score", type=float, default=10.0, help="PAIR/TAP stop when a rating reaches this")
    s = p.add_argument_group("attack sizes")
    s.add_argument("--pair-streams", type=POSITIVE, default=3)
    s.add_argument("--pair-iterations", type=POSITIVE, default=3)
    s.add_argument("--tap-branching", type=POSITIVE, default=2)
    s.add_argument("--tap-width", type=POSITIVE, default=2)
    s.add_argument("--tap-depth", type=POSITIVE, default=2)
    s.add_argument("--tap-roots", type=POSITIVE, default=1)
    s.add_argument("--gcg-steps", type=POSITIVE, default=20)
    s.add_argument("--gcg-search-width", type=POSITIVE, default=64)
    s.add_argument("--gcg-topk", type=POSITIVE, default=64)
    s.add_argument("--gcg-suffix-len", type=POSITIVE, default=20)
    s.add_argument("--gcg-surrogate", help="local white-box model to optimise GCG on (needed for remote targets)")
    s.add_argument("--gcg-target-template", default="Sure, here is {behavior}",
                   help="GCG target string; {behavior} is the behaviour text")
    p.set_defaults(run=run)


def _settings(args: argparse.Namespace, names: list[str]) -> dict:
    """What must not change between a run and its resumption (the limit may grow)."""
    skip = {"run", "command", "limit", "no_progress", "out", "attacks", "target_concurrency", "target_retries"}
    return {**{k: v for k, v in sorted(vars(args).items()) if k not in skip}, "attacks": names}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "target"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from advgame.config.schema import SamplingConfig
    from advgame.eval.classifiers import build_classifier
    from advgame.models.gguf import ModelNotFoundError
    from advgame.redteam.behaviors import BehaviorDataError, load_behaviors
    from advgame.redteam.build import build_attacks, parse_attack_names
    from advgame.redteam.runner import SettingsMismatch, check_settings, run_redteam
    from advgame.redteam.summary import markdown_table, rich_table
    from advgame.redteam.targets import build_target

    console = Console(stderr=True)
    try:
        if bool(args.target) == bool(args.target_url):
            raise ValueError("give exactly one of --target MODEL or --target-url URL (with --target-model)")
        names = parse_attack_names(args.attacks)
        classifier = build_classifier(args.classifier)
        behaviors = load_behaviors(args.behaviors, file=args.behaviors_file, split=args.harmbench_split,
                                   functional=args.functional_category, limit=args.limit)
        out = Path(args.out or Path("runs") / "redteam" / _slug(args.target or args.target_model or "endpoint"))
        from advgame.paths import writable_dir_problem

        if problem := writable_dir_problem(out):
            raise ValueError(f"--out: {problem}")
        check_settings(out, _settings(args, names))
        sampling = SamplingConfig(temperature=args.temperature, top_p=1.0, max_new_tokens=args.max_new_tokens,
                                  batch_size=16)
        target = build_target(args.target, sampling=sampling, seed=args.seed, adapter=args.target_adapter,
                              url=args.target_url, model=args.target_model, api_key_env=args.target_api_key_env,
                              concurrency=args.target_concurrency, retries=args.target_retries)
        attacks = build_attacks(names, args, target)
    except (ValueError, ModelNotFoundError, BehaviorDataError, SettingsMismatch) as e:
        print(f"advgame redteam: {e}", file=sys.stderr)  # plain: rich would read [..] in paths as markup
        return EXIT_ERROR
    behaviors_name = args.behaviors_file or args.behaviors
    summary = run_redteam(target, attacks, behaviors, classifier, out, behaviors_name=behaviors_name,
                          progress=not args.no_progress, console=console)
    Console().print(rich_table(summary))
    print(markdown_table(summary), end="")
    print(f"attempts: {out / 'attempts.jsonl'}\nsummary: {out / 'summary.json'}")
    return 0
