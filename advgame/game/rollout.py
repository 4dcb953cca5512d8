"""Growing the rollout tree: the Attacker writes, the faithfulness judge gates, the Defender answers.

Each function fills one level of the tree in place and returns nothing; `advgame.game.step` calls them
in the order of the paper's algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence

from advgame.config.schema import SamplingConfig
from advgame.data.seeds import SeedPrompt
from advgame.game.attacker_io import (
    AttackerFormat,
    ParsedRewrite,
    attacker_instruction,
    parse_attacker_output,
)
from advgame.game.tree import Answer, AnswerStatus, Rewrite, RewriteStatus, SeedNode, rewrites
from advgame.judges.base import FaithItem, Judge
from advgame.player import Player
from advgame.policy.sampling import Completion


def attack(
    seeds: Sequence[SeedPrompt],
    attacker: Player,
    sampling: SamplingConfig,
    *,
    num_samples: int,
    fmt: AttackerFormat,
    seed: int,
    return_logprobs: bool = False,
    direct_seeds: bool = False,
) -> list[SeedNode]:
    """Step 1: the Attacker writes `num_samples` rewrites per seed; each is parsed strictly.

    With `direct_seeds`, each seed also gets a 'direct' rewrite that is the seed itself: the Defender
    answers it like any other, but it is not the Attacker's work and never trains or scores the Attacker.
    """
    prompts = [attacker_instruction(s.text, s.category, fmt) for s in seeds]
    with attacker.sampling_weights():
        outs = attacker.backend.generate(
            prompts, sampling, num_samples=num_samples, seed=seed, return_logprobs=return_logprobs
        )
    tree = [SeedNode(seed=s) for s in seeds]
    for i, completion in enumerate(outs):
        parsed = None if completion.truncated else parse_attacker_output(completion.text, fmt)
        if completion.truncated:
            status = RewriteStatus.TRUNCATED
        else:
            status = RewriteStatus.OK if parsed else RewriteStatus.PARSE_ERROR
        tree[i // num_samples].rewrites.append(Rewrite(completion=completion, parsed=parsed, status=status))
    if direct_seeds:
        for node in tree:
            as_written = Completion(prompt_ids=[], token_ids=[], text=node.seed.text, truncated=False)
            node.rewrites.append(
                Rewrite(as_written, ParsedRewrite(node.seed.text, ""), RewriteStatus.OK, direct=True)
            )
    return tree


def gate_faithfulness(tree: list[SeedNode], judge: Judge) -> None:
    """Step 2: unfaithful rewrites are marked (reward −1) and never reach the Defender."""
    todo = [
        (node, r) for node in tree for r in node.rewrites if r.status == RewriteStatus.OK and not r.direct
    ]
    verdicts = judge.faithful(
        [FaithItem(seed=n.seed.text, prompt=r.prompt, category=n.category) for n, r in todo]
    )
    for (_, rewrite), verdict in zip(todo, verdicts, strict=True):
        if verdict is None:
            rewrite.status = RewriteStatus.FAITH_JUDGE_FAILED
        elif not verdict:
            rewrite.status = RewriteStatus.UNFAITHFUL


def defend(
    tree: list[SeedNode],
    defender: Player,
    sampling: SamplingConfig,
    *,
    num_samples: int,
    seed: int,
    return_logprobs: bool = False,
    penalize_truncated: bool = True,
) -> None:
    """Step 3: the Defender answers each faithful rewrite `num_samples` times. It sees the rewrite only.

    An answer cut at the length cap scores −1, unless `penalize_truncated` is off (then it is judged)."""
    todo = [r for r in rewrites(tree) if r.status == RewriteStatus.OK]
    with defender.sampling_weights():
        outs = defender.backend.generate(
            [r.prompt for r in todo],
            sampling,
            num_samples=num_samples,
            seed=seed,
            return_logprobs=return_logprobs,
        )
    for i, completion in enumerate(outs):
        status = AnswerStatus.TRUNCATED if completion.truncated and penalize_truncated else AnswerStatus.OK
        todo[i // num_samples].answers.append(Answer(completion=completion, status=status))
    for rewrite in todo:
        if not any(a.status == AnswerStatus.OK for a in rewrite.answers):
            rewrite.status = RewriteStatus.NO_VALID_ANSWER
