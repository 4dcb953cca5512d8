"""TAP (Mehrotra et al., 2024): tree of attacks with pruning.

Each depth level: every leaf asks the attacker for `branching` refinements of its prompt (one batched
call). Phase-1 pruning: the scorer's on-topic check drops children that no longer ask for the behaviour,
before any target query is spent on them (an undecided check keeps the child). The survivors are sent to
the target and rated 1-10. Phase-2 pruning: only the `width` best-rated children stay as leaves. The
search stops when a rating reaches `stop_score`, at `depth`, or when the budget runs out. The candidate
returned is the best-rated (prompt, reply) seen. `info` counts the prunes of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from advgame.redteam.attacks.attacker_lm import AttackerLM
from advgame.redteam.attacks.base import Budget, Candidate, Meter
from advgame.redteam.behaviors import Behavior
from advgame.redteam.scoring import MIN_SCORE, Scorer
from advgame.targets import Target


@dataclass
class TapAttack:
    attacker: AttackerLM
    scorer: Scorer
    budget: Budget
    branching: int = 2
    width: int = 2
    depth: int = 2
    roots: int = 1
    stop_score: float = 10.0
    name: str = "tap"

    def budget_info(self) -> dict:
        return {
            **self.budget.as_dict(),
            "branching": self.branching,
            "width": self.width,
            "depth": self.depth,
            "roots": self.roots,
            "stop_score": self.stop_score,
            "scorer": self.scorer.name,
        }

    def run(self, behavior: Behavior, target: Target) -> list[Candidate]:
        meter = Meter(target, self.budget)
        leaves = [self.attacker.opening(behavior.text) for _ in range(self.roots)]
        stats = {
            "depth_reached": 0,
            "generated": 0,
            "attacker_parse_failures": 0,
            "pruned_off_topic": 0,
            "on_topic_undecided": 0,
            "queried": 0,
            "pruned_low_score": 0,
            "target_errors": 0,
            "scores_undecided": 0,
        }
        best: tuple[float, str, str, int] | None = None
        for level in range(self.depth):
            if meter.exhausted() or not leaves:
                break
            stats["depth_reached"] = level + 1
            proposals = self.attacker.propose(leaves, num_samples=self.branching)
            stats["generated"] += len(proposals)
            children = [(k // self.branching, raw, p) for k, (raw, p) in enumerate(proposals) if p]
            stats["attacker_parse_failures"] += len(proposals) - len(children)
            topical = self.scorer.on_topic(behavior.text, [p for _, _, p in children])
            stats["on_topic_undecided"] += sum(t is None for t in topical)
            kept = [c for c, t in zip(children, topical, strict=True) if t is not False]
            stats["pruned_off_topic"] += len(children) - len(kept)
            kept = kept[: meter.queries_left()]
            replies = target.chat([p for _, _, p in kept])
            stats["queried"] += len(kept)
            answered = [(c, r) for c, r in zip(kept, replies, strict=True) if not r.error]
            stats["target_errors"] += len(kept) - len(answered)
            scores = self.scorer.rate(
                behavior.text, [c[2] for c, _ in answered], [r.text for _, r in answered]
            )
            scored = []
            for ((parent, raw, prompt), reply), score in zip(answered, scores, strict=True):
                stats["scores_undecided"] += score is None
                rank = MIN_SCORE if score is None else score
                scored.append((rank, self.attacker.extend(leaves[parent], raw, prompt, reply.text, score)))
                if best is None or rank > best[0]:
                    best = (rank, prompt, reply.text, level)
            if best is not None and best[0] >= self.stop_score:
                stats["early_stop"] = True
                break
            scored.sort(key=lambda s: -s[0])  # stable: ties keep generation order
            stats["pruned_low_score"] += max(0, len(scored) - self.width)
            leaves = [conv for _, conv in scored[: self.width]]
        if best is None:
            return [Candidate(None, None, meter.queries, meter.elapsed, error="no_reply", info=stats)]
        return [
            Candidate(
                best[1],
                best[2],
                meter.queries,
                meter.elapsed,
                info={**stats, "best_score": best[0], "best_depth": best[3]},
            )
        ]
