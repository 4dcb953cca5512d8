"""Judges that never answer must stop a run, not let it "finish" with 0 pairs.

* `check_judges(game)`: before the first step, one cheap call (a one-token request) to every judge that
  talks to an endpoint; a failure stops the run with one line naming the role, the endpoint and the reason.
* `FailureStreak`: after each step, if the judges were called and every call failed, the streak grows;
  after `judges.stop_after_failing_steps` such steps in a row the run stops with one line naming the
  endpoint and the most common failure reason. Any successful judgment resets the streak.
"""

from __future__ import annotations

from collections import Counter

from advgame import distributed
from advgame.config.schema import SamplingConfig
from advgame.errors import AdvGameError


class JudgeUnavailable(AdvGameError, RuntimeError):
    """The judges cannot answer; the message is one line naming the judge, its endpoint and the reason."""


def _role_judges(game) -> dict:
    roles = {"faithfulness": game.judges.faithfulness, "defender": game.judges.defender.judge}
    if game.judges.attacker is not None:
        roles["attacker"] = game.judges.attacker.judge
    return roles


def _inner(judge):
    return getattr(judge, "judge", judge) if type(judge).__name__ == "RoleView" else judge


def _endpoint(judge) -> str | None:
    urls = getattr(getattr(_inner(judge), "backend", None), "base_urls", None)
    return ", ".join(map(str, urls)) if urls else None


def describe(role: str, judge) -> str:
    where = _endpoint(judge)
    return f"the {role} judge {getattr(judge, 'name', type(judge).__name__)}" + (
        f" at {where}" if where else ""
    )


def check_judges(game) -> None:
    """One one-token call to each distinct endpoint judge; raises `JudgeUnavailable` on a failure."""
    seen: set[int] = set()
    for role, judge in _role_judges(game).items():
        inner = _inner(judge)
        backend = getattr(inner, "backend", None)
        if backend is None or not getattr(backend, "base_urls", None) or id(backend) in seen:
            continue
        seen.add(id(backend))
        probe = SamplingConfig(temperature=0.0, top_p=1.0, max_new_tokens=1, batch_size=1)
        try:
            out = backend.generate([[{"role": "user", "content": "Reply with the word OK."}]], probe)
            error = out[0].error if out else "no reply"
        except Exception as err:  # noqa: BLE001 - a bad URL can fail before any request
            error = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
        if error:
            raise JudgeUnavailable(
                f"{describe(role, judge)} failed a test call before training ({error}); check that the "
                f"endpoint is up and judges.{role}/judges.default base_urls, model and api_key_env are right"
            )


class FailureStreak:
    """Counts consecutive steps in which every judge call failed; see the module docstring."""

    def __init__(self, game, limit: int):
        self.game, self.limit, self.streak = game, limit, 0
        self._last = self._snapshot()

    def _snapshot(self) -> dict[str, tuple[int, Counter]]:
        """Per role (calls, failures by reason), summed over processes (a collective: all stop together)."""
        out = {}
        for role, j in _role_judges(self.game).items():
            state = distributed.sum_counters(j.stats.state_dict())
            out[role] = (int(state["calls"]), Counter(state["failures"]))
        return out

    def after_step(self, step: int) -> None:
        now = self._snapshot()
        calls = failures = 0
        reasons: Counter = Counter()
        worst = None
        for role, (n, fails) in now.items():
            n0, fails0 = self._last.get(role, (0, Counter()))
            d_calls, d_fails = n - n0, fails - fails0
            calls += d_calls
            failures += sum(d_fails.values())
            reasons += d_fails
            if d_fails and (worst is None or sum(d_fails.values()) > worst[1]):
                worst = (role, sum(d_fails.values()), d_calls)
        self._last = now
        if calls == 0 or failures < calls:
            self.streak = 0
            return
        self.streak += 1
        if self.limit and self.streak >= self.limit:
            role, _, _ = worst
            reason = reasons.most_common(1)[0][0]
            raise JudgeUnavailable(
                f"stopped at step {step}: every judge call failed for {self.streak} consecutive steps "
                f"({failures} of {calls} in the last; mostly '{reason}'), "
                f"e.g. {describe(role, _role_judges(self.game)[role])}; "
                "fix the judge (or raise judges.stop_after_failing_steps) and continue with --resume"
            )
