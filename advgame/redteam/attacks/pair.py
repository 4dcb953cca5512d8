"""PAIR (Chao et al., 2023): an attacker LLM refines a jailbreak from the target's replies and a judge's
rating.

`n_streams` independent conversations run in parallel (one batched attacker call and one batched target
call per iteration). Each iteration, every stream proposes a prompt; the target answers; the scorer rates
the reply 1-10; the stream's conversation gets the prompt, the reply and the rating as feedback for its next
proposal. The search stops early when a rating reaches `stop_score`, or when the budget runs out. The
candidate returned is the best-rated (prompt, reply) seen. An attacker answer that breaks the layout sends
nothing (no query) and is counted; an undecided rating counts as the lowest in the ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

from advgame.redteam.attacks.attacker_lm import AttackerLM
from advgame.redteam.attacks.base import Budget, Candidate, Meter
from advgame.redteam.behaviors import Behavior
from advgame.redteam.scoring import MIN_SCORE, Scorer
from advgame.targets import Target


@dataclass
class PairAttack:
    attacker: AttackerLM
    scorer: Scorer
    budget: Budget
    n_streams: int = 3
    n_iterations: int = 3
    stop_score: float = 10.0
    name: str = "pair"

    def budget_info(self) -> dict:
        return {
            **self.budget.as_dict(),
            "n_streams": self.n_streams,
            "n_iterations": self.n_iterations,
            "stop_score": self.stop_score,
            "scorer": self.scorer.name,
        }

    def run(self, behavior: Behavior, target: Target) -> list[Candidate]:
        meter = Meter(target, self.budget)
        convs = [self.attacker.opening(behavior.text) for _ in range(self.n_streams)]
        best: tuple[float, str, str, int] | None = None  # (score, prompt, reply, iteration)
        stats = {"iterations": 0, "attacker_parse_failures": 0, "scores_undecided": 0, "target_errors": 0}
        history = []
        for it in range(self.n_iterations):
            if meter.exhausted():
                break
            stats["iterations"] += 1
            proposals = self.attacker.propose(convs)
            live = [i for i, (_, p) in enumerate(proposals) if p][: meter.queries_left()]
            stats["attacker_parse_failures"] += sum(1 for _, p in proposals if not p)
            replies = target.chat([proposals[i][1] for i in live])
            ok = [(i, r) for i, r in zip(live, replies, strict=True) if not r.error]
            stats["target_errors"] += len(live) - len(ok)
            scores = self.scorer.rate(
                behavior.text, [proposals[i][1] for i, _ in ok], [r.text for _, r in ok]
            )
            for (i, reply), score in zip(ok, scores, strict=True):
                stats["scores_undecided"] += score is None
                raw, prompt = proposals[i]
                convs[i] = self.attacker.extend(convs[i], raw, prompt, reply.text, score)
                history.append({"iteration": it, "stream": i, "score": score})
                rank = MIN_SCORE if score is None else score
                if best is None or rank > best[0]:
                    best = (rank, prompt, reply.text, it)
            if best is not None and best[0] >= self.stop_score:
                stats["early_stop"] = True
                break
        info = {**stats, "history": history}
        if best is None:
            return [Candidate(None, None, meter.queries, meter.elapsed, error="no_reply", info=info)]
        info.update(best_score=best[0], best_iteration=best[3])
        return [Candidate(best[1], best[2], meter.queries, meter.elapsed, info=info)]
