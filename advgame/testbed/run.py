"""`python -m advgame.testbed run`: every method from the same start, distance to the equilibrium over time.

Writes, under --out (default bench/results):

    testbed_noise{ν}.png    TV distance to (ρ*, π*) per player and exploitability, over game steps
    testbed_noise{ν}.json   the curves (mean and per seed), final numbers, verdicts, the equilibria used

Every knob is a field of the dataclasses below (or of GameConfig / TrainConfig / JudgeConfig); each is a
flag, e.g. `--game.beta 0.5 --train.lr 0.05 --judge.link bt`. `--noise`, `--steps` and `--out` are short
for `--judge.noise`, `--train.steps` and `--out`.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from advgame.testbed.game import GameConfig, default_game
from advgame.testbed.judge import JudgeConfig
from advgame.testbed.solver import Equilibrium, gradient_play_spectrum, solve
from advgame.testbed.training import METHODS, Curves, TrainConfig, train, tv_distance

CONVERGED_TV = 0.05  # a method "converges" if its last iterate is this close to (ρ*, π*), both players
OSCILLATION_TV = 0.05  # ... and "oscillates" if its distance swings by this much over the last quarter


@dataclass
class RunConfig:
    """One testbed run: all methods, one judge-noise level, several seeds."""

    out: str = "bench/results"
    """Directory for testbed_noise{ν}.png/json."""
    methods: str = ",".join(METHODS)
    """Comma-separated methods to train (see advgame/testbed/training.py)."""
    seeds: int = 3
    """Independent runs per method (rollout/judge seeds train.seed, train.seed+1, ...);
    curves are averaged."""
    game: GameConfig = field(default_factory=GameConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)


# ---- targets and verdicts -----------------------------------------------------------------------------
def reference_points(game, noise: float) -> dict[str, Equilibrium]:
    """π* and the other points a method may settle at instead (see docs/testbed.md)."""
    points = {
        "equilibrium": solve(game),
        "forward_kl": solve(game, kl="forward"),  # where GRPO's k3-in-the-loss penalty leads
        "unregularised": solve(game, beta=game.beta / 100),  # β → 0: where the authors' EMA-only MD heads
    }
    if noise > 0:  # the game a noisy judge shows in expectation: β/(1 − ν)
        points["noisy_judge"] = solve(game.seen_through_noisy_judge(noise))
        points["noisy_judge_forward_kl"] = solve(game.seen_through_noisy_judge(noise), kl="forward")
    return points


def distance(rho: torch.Tensor, pi: torch.Tensor, eq: Equilibrium) -> dict[str, float]:
    att, dfn = tv_distance(rho, eq.rho), tv_distance(pi, eq.pi)
    return {"attacker": att, "defender": dfn, "both": max(att, dfn)}


def verdict(final_tv: float, tail_swing: float) -> str:
    if final_tv <= CONVERGED_TV:
        return "converges"
    if tail_swing >= OSCILLATION_TV:
        return "oscillates"
    return "stalls"


def settled_at(steps: list[int], tv: list[float], threshold: float = CONVERGED_TV) -> int | None:
    """First step from which the distance stays ≤ threshold until the end (None: it never does)."""
    for i in range(len(tv)):
        if max(tv[i:]) <= threshold:
            return steps[i]
    return None


def summarise(runs: list[Curves], points: dict[str, Equilibrium]) -> dict:
    quarter = max(1, len(runs[0].steps) // 4)
    final_tv = [r.tv[-1] for r in runs]
    swing = [max(r.tv[-quarter:]) - min(r.tv[-quarter:]) for r in runs]
    near = {name: _mean([distance(r.rho, r.pi, eq)["both"] for r in runs]) for name, eq in points.items()}
    mean_tv, mean_swing = _mean(final_tv), _mean(swing)
    settled = [settled_at(r.steps, r.tv) for r in runs]
    return {
        "settled_at_step_worst_seed": None if None in settled else max(settled),
        "final_tv_both": mean_tv,
        "final_tv_both_per_seed": final_tv,
        "final_tv_attacker": _mean([r.tv_attacker[-1] for r in runs]),
        "final_tv_defender": _mean([r.tv_defender[-1] for r in runs]),
        "final_exploitability": _mean([r.exploitability[-1] for r in runs]),
        "last_quarter_swing": mean_swing,
        "final_tv_to": near,
        "closest_point": min(near, key=near.get),
        "verdict": verdict(mean_tv, mean_swing),
    }


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


# ---- the run -----------------------------------------------------------------------------------------------
def run(cfg: RunConfig, command: str = "") -> dict:
    game = default_game(cfg.game)
    points = reference_points(game, cfg.judge.noise)
    eq = points["equilibrium"]
    assert eq.certified, eq.gaps
    results: dict = {
        "command": command,
        "config": dataclasses.asdict(cfg),
        "equilibrium": {
            "beta": game.beta,
            "gaps": dataclasses.asdict(eq.gaps),
            "rho": _table(eq.rho, game.seed_names, game.strategy_names),
            "pi": _table(eq.pi, game.prompt_names, game.response_names),
            "gradient_play_spectrum": gradient_play_spectrum(game, eq),
        },
        "methods": {},
    }
    for name in cfg.methods.split(","):
        t0 = time.perf_counter()
        runs = [
            train(game, name, dataclasses.replace(cfg.train, seed=cfg.train.seed + i), cfg.judge, eq)
            for i in range(cfg.seeds)
        ]
        summary = summarise(runs, points)
        summary["seconds_per_seed"] = (time.perf_counter() - t0) / cfg.seeds
        results["methods"][name] = {
            "label": METHODS[name].label,
            "steps": runs[0].steps,
            "tv_attacker": [r.tv_attacker for r in runs],
            "tv_defender": [r.tv_defender for r in runs],
            "exploitability": [r.exploitability for r in runs],
            "summary": summary,
            "last_iterate_seed0": {
                "rho": _table(runs[0].rho, game.seed_names, game.strategy_names),
                "pi": _table(runs[0].pi, game.prompt_names, game.response_names),
            },
        }
    return results


def _table(t: torch.Tensor, rows: list[str], cols: list[str]) -> dict[str, dict[str, float]]:
    return {r: {c: round(float(v), 6) for c, v in zip(cols, row)} for r, row in zip(rows, t.tolist())}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.6))
    panels = [
        ("tv_attacker", "TV to ρ* (attacker, mean over seeds)"),
        ("tv_defender", "TV to π* (defender, mean over prompts)"),
        ("exploitability", "exploitability (gap_att + gap_def)"),
    ]
    styles = {
        "dpo_md": ("C0", "-"),
        "ipo_md": ("C1", "-"),
        "grpo": ("C2", "-"),
        "no_ema": ("C3", "-"),
        "sequential": ("C4", "-"),
        "dpo_md_ema": ("C0", ":"),
        "ipo_md_ema": ("C1", ":"),
    }
    for ax, (key, title) in zip(axes, panels):
        for name, m in results["methods"].items():
            color, ls = styles.get(name, ("k", "--"))
            runs = torch.tensor(m[key])
            steps = m["steps"]
            ax.plot(steps, runs.mean(0), color=color, ls=ls, lw=1.6, label=m["label"])
            if runs.shape[0] > 1:
                ax.fill_between(steps, runs.min(0).values, runs.max(0).values, color=color, alpha=0.12, lw=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("game step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        if key != "exploitability":
            ax.axhline(CONVERGED_TV, color="grey", lw=0.8, ls="--")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=9, frameon=False)
    cfg = results["config"]
    fig.suptitle(
        f"AdvGame tabular testbed — judge noise {cfg['judge']['noise']}, link {cfg['judge']['link']}, "
        f"β={cfg['game']['beta']}, {cfg['seeds']} seeds (band: min–max)\n{results['command']}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict, out: Path, noise: float) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    png, js = out / f"testbed_noise{noise}.png", out / f"testbed_noise{noise}.json"
    plot(results, png)
    js.write_text(json.dumps(results, indent=1))
    return png, js


def print_table(results: dict) -> None:
    print(
        f"{'method':30s} {'final TV':>9s} {'att':>7s} {'def':>7s} {'exploit':>9s} {'swing':>7s} "
        f"{'settled':>8s}  verdict     closest"
    )
    for m in results["methods"].values():
        s = m["summary"]
        print(
            f"{m['label']:30s} {s['final_tv_both']:9.3f} {s['final_tv_attacker']:7.3f} "
            f"{s['final_tv_defender']:7.3f} {s['final_exploitability']:9.1e} {s['last_quarter_swing']:7.3f} "
            f"{s['settled_at_step_worst_seed']!s:>8s}"
            f"  {s['verdict']:11s} {s['closest_point']}"
        )


# ---- CLI: a flag per dataclass field, help from the field docstrings ---------------------------------------
ALIASES = {"noise": "judge.noise", "steps": "train.steps"}


def _field_docs(cls) -> dict[str, str]:
    """The string literal under each field of a dataclass (CleanRL/tyro convention)."""
    docs: dict[str, str] = {}
    body = ast.parse(inspect.getsource(cls)).body[0].body
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
        ):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def _add_flags(parser: argparse.ArgumentParser, cls, prefix: str = "") -> None:
    docs = _field_docs(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(default):
            _add_flags(parser, type(default), f"{prefix}{f.name}.")
            continue
        name = prefix + f.name
        flags = [f"--{name}"] + [f"--{a}" for a, target in ALIASES.items() if target == name]
        helptext = f"{docs.get(f.name, '')} (default: {default})".replace("%", "%%")
        if isinstance(default, bool):
            parser.add_argument(
                *flags,
                dest=name,
                type=lambda v: v.lower() in ("1", "true", "yes"),
                default=default,
                help=helptext,
            )
        elif isinstance(default, tuple):
            parser.add_argument(*flags, dest=name, type=float, nargs="+", default=default, help=helptext)
        else:
            parser.add_argument(*flags, dest=name, type=type(default), default=default, help=helptext)


def parse(argv: list[str]) -> RunConfig:
    parser = argparse.ArgumentParser(
        prog="python -m advgame.testbed run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_flags(parser, RunConfig)
    values = vars(parser.parse_args(argv))
    cfg = RunConfig()
    for dotted, value in values.items():
        *path, leaf = dotted.split(".")
        target = cfg
        for part in path:
            target = getattr(target, part)
        setattr(target, leaf, tuple(value) if isinstance(value, list) else value)
    unknown = set(cfg.methods.split(",")) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)} (allowed: {', '.join(METHODS)})")
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "run":
        print(
            "usage: python -m advgame.testbed run [--out DIR] [--noise 0.0] [--steps N] [--help]",
            file=sys.stderr,
        )
        return 2
    cfg = parse(argv[1:])
    command = "python -m advgame.testbed " + shlex.join(argv)
    t0 = time.perf_counter()
    results = run(cfg, command)
    png, js = write(results, Path(cfg.out), cfg.judge.noise)
    print(f"{command}  ({time.perf_counter() - t0:.0f} s)")
    print_table(results)
    print(f"wrote {png} and {js}")
    return 0
