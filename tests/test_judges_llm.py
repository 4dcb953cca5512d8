"""LLMJudge over a scripted backend: prompts, parsing, failures in stats, order swap, reproducible nonces."""

from __future__ import annotations

import re

import pytest

from advgame.backends.hf import HFBackend
from advgame.config.schema import JudgeConfig, SamplingConfig
from advgame.judges.base import FaithItem, Judge, PairItem, PointItem
from advgame.judges.factory import build_judge
from advgame.judges.heuristic import HeuristicJudge
from advgame.judges.llm import LLMJudge
from advgame.policy.sampling import Completion


class CannedBackend:
    """Answers prompt i of the run with replies[i] (a text, or a Completion); records every prompt."""

    name = "canned"

    def __init__(self, replies):
        self.replies = list(replies)
        self.prompts: list = []
        self.calls: list[dict] = []

    def generate(self, prompts, sampling, *, num_samples=1, seed=None, return_logprobs=False):
        self.calls.append({"n": len(prompts), "seed": seed, "num_samples": num_samples})
        out = []
        for p in prompts:
            reply = self.replies[len(self.prompts)]
            self.prompts.append(p)
            out.append(
                reply
                if isinstance(reply, Completion)
                else Completion(prompt_ids=[], token_ids=[], text=reply, truncated=False)
            )
        return out


def content(prompt) -> str:
    return prompt[-1]["content"]


def pair(a, b):
    return f"<think>compare</think><score_A>{a}</score_A><score_B>{b}</score_B>"


SAMPLING = SamplingConfig(temperature=0.0, max_new_tokens=64)


def test_pairwise_pointwise_faithfulness_parse():
    backend = CannedBackend(
        [
            pair(8, 2),
            pair(3, 3),
            "<think>ok</think><score>6</score>",
            "<think>same</think><answer>True</answer>",
            "<think>drift</think><answer>False</answer>",
        ]
    )
    judge = LLMJudge(backend, SAMPLING, seed=0)
    assert isinstance(judge, Judge)
    items = [PairItem("compliance", "q1", "ya", "yb"), PairItem("deflection", "q2", "za", "zb")]
    assert judge.score_pairs(items) == [(8.0, 2.0), (3.0, 3.0)]
    assert judge.score_points([PointItem("refusal", "q", "y")]) == [6.0]
    faith = [FaithItem("seed one", "rewrite one", "harmful"), FaithItem("seed two", "rewrite two", "benign")]
    assert judge.faithful(faith) == [True, False]
    assert [c["n"] for c in backend.calls] == [2, 1, 2]  # one batch per method call
    assert "ya" in content(backend.prompts[0]) and "yb" in content(backend.prompts[0])
    assert "DEFLECTION" in content(backend.prompts[1]) and "OUTRIGHT REFUSAL" in content(backend.prompts[2])
    assert "rewrite two" in content(backend.prompts[4])
    assert judge.stats.calls == 5 and judge.stats.num_failures == 0


def test_failures_are_none_and_counted():
    error = Completion(prompt_ids=[], token_ids=[], text="", truncated=False, error="timeout")
    cut = Completion(prompt_ids=[], token_ids=[], text=pair(9, 1), truncated=True)
    twice = pair(5, 5) + "<score_A>9</score_A>"
    backend = CannedBackend([pair(7, 1), error, cut, "<think>x</think> A is better", twice])
    judge = LLMJudge(backend, SAMPLING)
    items = [PairItem("compliance", "q", "a", "b")] * 5
    assert judge.score_pairs(items) == [(7.0, 1.0), None, None, None, None]
    assert judge.stats.calls == 5
    assert dict(judge.stats.failures) == {"timeout": 1, "truncated": 1, "parse": 2}
    assert judge.stats.as_dict()["failed_parse"] == 2


def test_order_swap_averages_both_orders():
    # Item 1: (A,B) -> 8, 2 and (B,A) -> 4, 6, so A = (8 + 6) / 2, B = (2 + 4) / 2.
    # Item 2: the swapped order fails to parse -> None.
    backend = CannedBackend([pair(8, 2), pair(4, 6), pair(9, 1), "<think>x</think>no tags"])
    judge = LLMJudge(backend, SAMPLING, order_swap=True)
    items = [PairItem("compliance", "q", "first answer", "second answer"), PairItem("refusal", "q", "c", "d")]
    assert judge.score_pairs(items) == [(7.0, 3.0), None]
    assert backend.calls == [{"n": 4, "seed": None, "num_samples": 1}]
    a_first, b_first = content(backend.prompts[0]), content(backend.prompts[1])
    assert a_first.index("first answer") < a_first.index("second answer")
    assert b_first.index("second answer") < b_first.index("first answer")
    assert judge.stats.calls == 2 and dict(judge.stats.failures) == {"parse": 1}
    assert judge.name.endswith(":swap")


def test_order_swap_counts_a_backend_failure():
    error = Completion(prompt_ids=[], token_ids=[], text="", truncated=False, error="http_500")
    judge = LLMJudge(CannedBackend([error, pair(1, 1)]), SAMPLING, order_swap=True)
    assert judge.score_pairs([PairItem("refusal", "q", "a", "b")]) == [None]
    assert dict(judge.stats.failures) == {"http_500": 1}


def test_nonces_are_per_item_and_reproducible():
    def run(seed):
        backend = CannedBackend(["<think>x</think><score>5</score>"] * 3)
        LLMJudge(backend, SAMPLING, seed=seed).score_points([PointItem("compliance", "q", "y")] * 3)
        nonces = [re.search(r"<<<QUERY ([0-9a-f]+)>>>", content(p)).group(1) for p in backend.prompts]
        return nonces, backend.calls[0]["seed"]

    nonces, seed = run(1)
    assert len(set(nonces)) == 3 and seed is not None
    assert run(1) == (nonces, seed)
    assert run(2)[0] != nonces


def test_empty_batch_makes_no_call():
    backend = CannedBackend([])
    judge = LLMJudge(backend, SAMPLING)
    assert judge.score_pairs([]) == [] and judge.score_points([]) == [] and judge.faithful([]) == []
    assert backend.calls == [] and judge.stats.calls == 0


def test_factory_kinds():
    assert isinstance(build_judge(JudgeConfig(kind="heuristic")), HeuristicJudge)
    backend = CannedBackend([])
    cfg = JudgeConfig(kind="model", model="defender", mode="pointwise", temperature=0.3)
    judge = build_judge(cfg, backend)
    assert isinstance(judge, LLMJudge) and judge.name == "llm:canned:pointwise"
    assert judge.sampling.temperature == 0.3
    with pytest.raises(ValueError, match="backend"):
        build_judge(JudgeConfig(kind="model", model="some/judge"))
    remote = build_judge(JudgeConfig(kind="openai", model="m", base_urls=["http://127.0.0.1:9/v1"]))
    assert isinstance(remote, LLMJudge) and remote.name == "llm:openai:m:pairwise"


def test_over_an_in_process_model(tiny_llama):
    """A real (tiny, random) HF model as judge: its babble does not parse, so every item is a counted None."""
    model, tokenizer = tiny_llama
    judge = LLMJudge(HFBackend(model, tokenizer, name="tiny"), SamplingConfig(max_new_tokens=8), seed=0)
    assert judge.score_points([PointItem("compliance", "q", "y")] * 2) == [None, None]
    assert judge.stats.calls == 2 and judge.stats.num_failures == 2
    assert set(judge.stats.failures) <= {"parse", "truncated"}
