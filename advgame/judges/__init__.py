"""Judges of the game: the protocol (base), LLM judges over any backend (llm), the one ask loop every LLM
judge of the project uses (asking), an offline heuristic judge (heuristic), their prompts (rubrics) and
output parsers (parsing), and `build_judge` (factory)."""

from advgame.lazy import lazy_exports

_HOMES = {
    "JudgeAsker": "asking",
    "RUBRICS": "base",
    "FaithItem": "base",
    "Judge": "base",
    "JudgeStats": "base",
    "PairItem": "base",
    "PointItem": "base",
    "build_judge": "factory",
    "judge_sampling": "factory",
    "REFUSAL_CLASSIFIER_NAME": "heuristic",
    "HeuristicJudge": "heuristic",
    "is_refusal": "heuristic",
    "LLMJudge": "llm",
    "parse_faithful": "parsing",
    "parse_pair_scores": "parsing",
    "parse_point_score": "parsing",
    "faithfulness_prompt": "rubrics",
    "pairwise_prompt": "rubrics",
    "pointwise_prompt": "rubrics",
}
__all__ = list(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
