"""One step of the game, for both players, as in the paper's algorithm.

    for split in (harmful, benign):
        1. the Attacker (EMA sampler in the MD variants) writes A rewrites per seed
        2. the faithfulness judge gates them: unfaithful ones score −1 and never reach the Defender
        3. the Defender answers each faithful rewrite D times (it sees the rewrite only)
        4. the Defender judge scores the answers against the rewrite
        5. each rewrite is represented by the Defender's best answer (optimistic attacker), which the
           Attacker judge scores against the original seed
        6. rewards -> DPO/IPO pairs or GRPO advantages; each trained player takes one optimiser step
    both EMAs move once; both learning-rate schedules advance once

With `game.overlap_judges`, the harmful split's judges (4-5) run in a thread while the benign split
generates (1-3); the harmful update (6) waits for both. With `game.split_sampling_weights: step_start`
(the authors' code) both splits are grown (1-5) before either update (6).
"""

from __future__ import annotations

import hashlib
import random
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from advgame import distributed
from advgame.config.schema import RunConfig
from advgame.data.seeds import SeedPrompt
from advgame.game import rollout, scoring, signals, update
from advgame.game.scoring import RoleJudge
from advgame.game.tree import RewriteStatus, SeedNode, answers, rewrites
from advgame.game.validation import distinct_n
from advgame.judges.base import Judge
from advgame.player import Player

SPLITS = ("harmful", "benign")
FAITHFUL = {RewriteStatus.OK, RewriteStatus.NO_VALID_ANSWER, RewriteStatus.JUDGE_FAILED}


@dataclass
class GameJudges:
    faithfulness: Judge
    defender: RoleJudge
    attacker: RoleJudge | None  # None: every valid rewrite scores 0 (fixed-attacker ablation)


@dataclass
class Game:
    """Everything one step needs. In self-play, `attacker` and `defender` are the same Player."""

    cfg: RunConfig
    attacker: Player
    defender: Player
    judges: GameJudges

    def players(self) -> list[Player]:
        """The distinct players: one in self-play, two otherwise."""
        return [self.attacker] if self.attacker is self.defender else [self.attacker, self.defender]


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from the run seed, step, split and role: reproducible, and the same after a resume."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "little") >> 1


def trained_roles(cfg: RunConfig, step: int) -> tuple[str, ...]:
    """Which roles update at `step` (sequential play alternates phases of `phase_steps` steps)."""
    roles = [
        r for r, on in (("attacker", cfg.game.train_attacker), ("defender", cfg.game.train_defender)) if on
    ]
    if cfg.game.mode == "sequential":
        phase = "attacker" if (step // cfg.game.phase_steps) % 2 == 0 else "defender"
        roles = [r for r in roles if r == phase]
    return tuple(roles)


def uses_sampler_logprobs(cfg: RunConfig) -> bool:
    """On-policy GRPO with a truncated importance weight needs the sampler's per-token log-probs."""
    return cfg.loss.type == "grpo" and cfg.loss.is_cap is not None and not cfg.ema.sample_from_ema


def play_split(
    game: Game, seeds: list[SeedPrompt], step: int, split: str, timings: Counter
) -> list[SeedNode]:
    """Steps 1-5: grow and score the rollout tree of one split."""
    tree = generate_split(game, seeds, step, split, timings)
    judge_split(game, tree, timings)
    return tree


def generate_split(
    game: Game, seeds: list[SeedPrompt], step: int, split: str, timings: Counter
) -> list[SeedNode]:
    """Steps 1-3: rewrites, the faithfulness gate, the Defender's answers."""
    cfg, g = game.cfg, game.cfg.game
    rank = distributed.info()
    shard_tag = (f"rank{rank.rank}",) if rank.world_size > 1 else ()  # each process samples its own noise
    want_logprobs = uses_sampler_logprobs(cfg)

    t = time.perf_counter()
    tree = rollout.attack(
        seeds,
        game.attacker,
        cfg.attacker_sampling,
        num_samples=g.num_attacker_samples,
        fmt=g.attacker_format,
        seed=derive_seed(cfg.seed, step, split, "attacker", *shard_tag),
        return_logprobs=want_logprobs,
        direct_seeds=g.direct_seeds,
    )
    timings["attacker_generation"] += _lap(t)

    t = time.perf_counter()
    rollout.gate_faithfulness(tree, game.judges.faithfulness)
    timings["faithfulness_judge"] += _lap(t)

    t = time.perf_counter()
    rollout.defend(
        tree,
        game.defender,
        cfg.defender_sampling,
        num_samples=g.num_defender_samples,
        seed=derive_seed(cfg.seed, step, split, "defender", *shard_tag),
        return_logprobs=want_logprobs,
        penalize_truncated=g.penalize_truncated_answers,
    )
    timings["defender_generation"] += _lap(t)
    return tree


def judge_split(game: Game, tree: list[SeedNode], timings: Counter) -> list[SeedNode]:
    """Steps 4-5: the Defender judge, optimistic selection, the Attacker judge."""
    t = time.perf_counter()
    scoring.judge_answers(tree, game.judges.defender)
    scoring.select_answers(tree, optimistic=game.cfg.game.optimistic_attacker)
    scoring.judge_attacks(tree, game.judges.attacker)
    timings["judges"] += _lap(t)
    return tree


def _lap(start: float) -> float:
    return time.perf_counter() - start


def update_players(
    game: Game, tree: list[SeedNode], roles: tuple[str, ...], control_seed: int = 0
) -> dict[str, float]:
    """Step 6: backpropagate each trained role's loss, then one optimiser step per distinct player. In a
    control run (game.control=random_preferences) each group's rewards are shuffled first, seeded by
    `control_seed`."""
    cfg = game.cfg
    rng = random.Random(control_seed) if cfg.game.control == "random_preferences" else None
    metrics: dict[str, float] = {}
    stepped: dict[int, Player] = {}
    for role in roles:
        player = game.attacker if role == "attacker" else game.defender
        if cfg.loss.type == "grpo":
            batch = (
                signals.attacker_rollouts(tree, rng)
                if role == "attacker"
                else signals.defender_rollouts(tree, rng)
            )
            stats = update.grpo_backward(
                player, batch, cfg.loss, cfg.train.microbatch_size, uses_sampler_logprobs(cfg)
            )
        else:
            pairs = signals.attacker_pairs if role == "attacker" else signals.defender_pairs
            batch = pairs(tree, rng, cfg.loss.clip_rejected_on_truncation, cfg.loss.min_reward_gap)
            stats = update.preference_backward(player, batch, cfg.loss, cfg.train.microbatch_size)
        metrics[f"{role}/{'rollouts' if cfg.loss.type == 'grpo' else 'pairs'}"] = stats.total  # all processes
        metrics[f"{role}/loss"] = stats.loss
        for key, value in (stats.extra or {}).items():
            metrics[f"{role}/{key}"] = value
        if stats.total > 0:
            stepped[id(player)] = player
    for player in stepped.values():
        metrics[f"{player.name}/grad_norm"] = update.optimizer_step(player, cfg.optim.max_grad_norm)
    return metrics


def tree_metrics(tree: list[SeedNode]) -> dict[str, float]:
    """Status rates and mean rewards of one split's tree."""
    rws, ans = rewrites(tree, attacker_only=True), answers(tree)
    out: dict[str, float] = {}
    for status, n in Counter(r.status.value for r in rws).items():
        out[f"attacker/rate_{status}"] = n / len(rws)
    for status, n in Counter(a.status.value for a in ans).items():
        out[f"defender/rate_{status}"] = n / len(ans)
    if rws:  # rewrites that passed the format and faithfulness checks (reached the Defender)
        out["attacker/faithful_rate"] = sum(r.status in FAITHFUL for r in rws) / len(rws)
    if ans:
        out["defender/distinct_2"] = distinct_n([a.completion.text for a in ans], 2)
    for role, nodes in (("attacker", rws), ("defender", ans)):
        rewards = [n.reward for n in nodes if n.reward is not None]
        out[f"{role}/reward"] = sum(rewards) / len(rewards) if rewards else float("nan")
        scores = [n.score for n in nodes if n.score is not None]
        out[f"{role}/judge_score"] = sum(scores) / len(scores) if scores else float("nan")
    return out


def game_step(
    game: Game, batches: dict[str, list[SeedPrompt]], step: int
) -> tuple[dict[str, float], dict[str, list[SeedNode]]]:
    """One game step over both splits; returns metrics ('harmful/defender/reward', 'time/...', ...) and trees.

    Under data parallelism `batches` is this process's shard; the returned metrics and trees cover the
    global batch (every process's tree), the same on every process."""
    roles = trained_roles(game.cfg, step)
    timings: Counter = Counter()
    metrics: dict[str, float] = {}
    trees: dict[str, list[SeedNode]] = {}
    syncs = _engine_sync_counts(game)
    for split, tree in played_splits(game, batches, step, timings):  # steps 1-5 of each split
        update_metrics = _update_split(game, tree, roles, step, split, timings)  # step 6
        trees[split] = distributed.gather_concat(tree)  # metrics and trees cover the global batch
        split_metrics = {**tree_metrics(trees[split]), **update_metrics}
        metrics.update({f"{split}/{k}": v for k, v in split_metrics.items()})
        if split == SPLITS[0] and _samples_before_first_update(game.cfg):
            metrics[f"{SPLITS[1]}/policy_lag"] = _policy_lag(game, metrics)

    t = time.perf_counter()
    for player in game.players():  # both EMAs move once; both schedules advance once
        player.end_step()
        _advance_schedule(player)
        metrics[f"{player.name}/lr"] = player.optimizer.param_groups[0]["lr"] if player.optimizer else 0.0
    timings["ema"] += _lap(t)
    metrics.update(_engine_sync_metrics(game, syncs, timings))
    metrics.update({f"time/{k}": v for k, v in timings.items()})
    return metrics, trees


def played_splits(
    game: Game, batches: dict[str, list[SeedPrompt]], step: int, timings: Counter
) -> Iterator[tuple[str, list[SeedNode]]]:
    """Steps 1-5 of each split, handed over (split, tree) for its update, in the order the config asks:

    default                        harmful played, harmful update, benign played, benign update
    split_sampling_weights:        both splits played (the authors' order), then both updates
      step_start
    overlap_judges                 harmful generated; harmful judged in a thread while benign generates;
                                   harmful update; benign judged; benign update
    """
    g = game.cfg.game
    if g.overlap_judges:
        first, second = SPLITS
        tree = generate_split(game, batches[first], step, first, timings)
        next_tree = _generate_while_judging(game, tree, batches[second], step, second, timings)
        yield first, tree
        yield second, judge_split(game, next_tree, timings)
    elif g.split_sampling_weights == "step_start":
        yield from [(split, play_split(game, batches[split], step, split, timings)) for split in SPLITS]
    else:
        for split in SPLITS:
            yield split, play_split(game, batches[split], step, split, timings)


def _generate_while_judging(
    game: Game, tree: list[SeedNode], seeds: list[SeedPrompt], step: int, split: str, timings: Counter
) -> list[SeedNode]:
    """Steps 1-3 of `split` while `tree` (the previous split) is judged (4-5) in a thread."""
    judge_timings: Counter = Counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        judged = pool.submit(judge_split, game, tree, judge_timings)
        next_tree = generate_split(game, seeds, step, split, timings)
        judged.result()  # re-raises a judge error here
    timings["judges_overlapped"] += judge_timings["judges"]
    return next_tree


def _update_split(
    game: Game, tree: list[SeedNode], roles: tuple[str, ...], step: int, split: str, timings: Counter
) -> dict[str, float]:
    """Step 6 for one split: engines with sleep mode hand their GPU memory to the update first."""
    for player in game.players():
        if player.engine_sync is not None:
            player.engine_sync.release()
    t = time.perf_counter()
    out = update_players(game, tree, roles, derive_seed(game.cfg.seed, step, split, "control"))
    timings["updates"] += _lap(t)
    return out


def _samples_before_first_update(cfg: RunConfig) -> bool:
    """Whether the second split is sampled before the first split's update (then it may lag one update)."""
    return cfg.game.overlap_judges or cfg.game.split_sampling_weights == "step_start"


def _policy_lag(game: Game, metrics: dict[str, float]) -> float:
    """1 when the second split was sampled by weights that the first split's update has since moved."""
    stepped = any(metrics.get(f"{SPLITS[0]}/{p.name}/grad_norm") is not None for p in game.players())
    return float(stepped and not game.cfg.ema.sample_from_ema)


def _advance_schedule(player: Player) -> None:
    if player.scheduler is None:
        return
    with warnings.catch_warnings():  # a player that had no signal this step did not step its optimiser
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
        player.scheduler.step()


def _engine_sync_counts(game: Game) -> dict[str, tuple[int, float]]:
    """Per player with an external engine: syncs so far and their total seconds."""
    return {
        p.name: (p.engine_sync.count, p.engine_sync.total_seconds) for p in game.players() if p.engine_sync
    }


def _engine_sync_metrics(game: Game, before: dict[str, tuple[int, float]], timings: Counter) -> dict:
    """Weights sent to an external engine this step (their time is inside the generation times)."""
    out = {}
    for player in game.players():
        if player.name in before:
            count, seconds = before[player.name]
            out[f"{player.name}/engine_syncs"] = player.engine_sync.count - count
            timings[f"{player.name}_engine_sync"] = player.engine_sync.total_seconds - seconds
    return out
