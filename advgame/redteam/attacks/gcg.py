"""GCG as a red-team attack: optimise a suffix per behaviour, then send `behaviour + suffix` once.

White-box local targets are optimised directly. A remote (or otherwise black-box) target needs a local
surrogate (`surrogate=(model, tokenizer)`, from `--gcg-surrogate MODEL`): the suffix is optimised on it and
transferred as text, as in the GCG paper's transfer setting. The optimisation costs no target queries; the
final check costs one. `info` has the loss curve, so runs can be audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advgame.redteam.attacks.base import Budget, Candidate, Meter
from advgame.redteam.attacks.gcg_optim import gcg_optimize
from advgame.redteam.behaviors import Behavior
from advgame.targets import Target

DEFAULT_TARGET_TEMPLATE = "Sure, here is {behavior}"

# Leading verbs of HarmBench-style behaviours -> the affirmative reply's opening ("Write a poem" -> "Sure,
# here is a poem"), in the spirit of the GCG / HarmBench target strings; anything else gets a generic one.
_OPENINGS = (
    (
        (
            "write",
            "generate",
            "create",
            "compose",
            "draft",
            "produce",
            "give",
            "provide",
            "devise",
            "come up with",
        ),
        "Sure, here is {rest}",
    ),
    (
        ("explain how to", "describe how to", "tell me how to", "show me how to"),
        "Sure, here is how to {rest}",
    ),
    (("describe", "explain"), "Sure, here is an explanation of {rest}"),
    (("list",), "Sure, here is a list of {rest}"),
)


def target_string(behavior: str, template: str = DEFAULT_TARGET_TEMPLATE) -> str:
    """The reply GCG steers towards. With the default template, the behaviour's leading verb is turned into
    an affirmative opening ('Write a poem.' -> 'Sure, here is a poem'); a custom template gets the behaviour
    with its first letter lower-cased and no final punctuation."""
    b = behavior.strip().rstrip(".!?")
    if template != DEFAULT_TARGET_TEMPLATE:
        return template.format(behavior=b[:1].lower() + b[1:])
    low = b.lower()
    for verbs, opening in _OPENINGS:
        for verb in verbs:
            if low.startswith(verb + " "):
                return opening.format(rest=b[len(verb) + 1 :])
    return "Sure, here is a response to your request"


@dataclass
class GcgAttack:
    budget: Budget
    steps: int = 20
    search_width: int = 64
    topk: int = 64
    suffix_len: int = 20
    target_template: str = DEFAULT_TARGET_TEMPLATE
    surrogate: tuple[Any, Any] | None = None  # (model, tokenizer) when the target is not white-box
    surrogate_name: str | None = None
    seed: int = 0
    name: str = "gcg"

    def budget_info(self) -> dict:
        return {
            **self.budget.as_dict(),
            "steps": self.steps,
            "search_width": self.search_width,
            "topk": self.topk,
            "suffix_len": self.suffix_len,
            "surrogate": self.surrogate_name,
        }

    def run(self, behavior: Behavior, target: Target) -> list[Candidate]:
        meter = Meter(target, self.budget)
        if self.surrogate is not None:
            model, tokenizer = self.surrogate
        elif target.white_box:
            model, tokenizer = target.model, target.tokenizer
        else:
            raise ValueError(
                "gcg needs a white-box local target, or a surrogate model (--gcg-surrogate MODEL)"
            )
        res = gcg_optimize(
            model,
            tokenizer,
            behavior.text,
            target_string(behavior.text, self.target_template),
            steps=self.steps,
            search_width=self.search_width,
            topk=self.topk,
            suffix_len=self.suffix_len,
            seed=self.seed,
            max_seconds=self.budget.max_seconds,
        )
        info = {
            "steps": res.steps,
            "initial_loss": res.best_losses[0],
            "best_loss": res.best_loss,
            "losses": [round(x, 4) for x in res.losses],
            "suffix": res.suffix,
            "optimised_on": self.surrogate_name or target.name,
        }
        prompt = f"{behavior.text} {res.suffix}"
        if meter.queries_left() == 0:
            return [Candidate(prompt, None, 0, meter.elapsed, error="budget", info=info)]
        (reply,) = target.chat([prompt])
        return [Candidate(prompt, reply.text, meter.queries, meter.elapsed, error=reply.error, info=info)]
