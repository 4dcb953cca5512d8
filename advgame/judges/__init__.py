"""Judges of the game: the protocol (base), LLM judges over any backend (llm), an offline heuristic judge
(heuristic), their prompts (rubrics) and output parsers (parsing), and `build_judge` (factory)."""

from advgame.judges.base import RUBRICS, FaithItem, Judge, JudgeStats, PairItem, PointItem
from advgame.judges.factory import build_judge, judge_sampling
from advgame.judges.heuristic import REFUSAL_CLASSIFIER_NAME, HeuristicJudge, is_refusal
from advgame.judges.llm import LLMJudge
from advgame.judges.parsing import parse_faithful, parse_pair_scores, parse_point_score
from advgame.judges.rubrics import faithfulness_prompt, pairwise_prompt, pointwise_prompt

__all__ = [
    "REFUSAL_CLASSIFIER_NAME",
    "RUBRICS",
    "FaithItem",
    "HeuristicJudge",
    "Judge",
    "JudgeStats",
    "LLMJudge",
    "PairItem",
    "PointItem",
    "build_judge",
    "faithfulness_prompt",
    "is_refusal",
    "judge_sampling",
    "pairwise_prompt",
    "parse_faithful",
    "parse_pair_scores",
    "parse_point_score",
    "pointwise_prompt",
]
