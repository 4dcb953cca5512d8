"""Strict parsers for judge outputs. Anything doubtful is None (a failed judgment), never a guess.

Rules shared by all three parsers:

  * Only the verdict part counts: the text after the last `</think>` when there is one (a judge may quote
    the judged text, tags and all, inside its reasoning). A `<think>` that is never closed is a failure.
  * In the verdict part each expected tag must appear exactly once, opening and closing; a missing or
    repeated tag is a failure. Tag names are case-insensitive and may carry inner spaces (`< score_A >`).
  * Scores: an integer or a number with one decimal, optionally signed, optionally followed by `/10`,
    whitespace allowed around it; anything else (words, `nan`, `7.25`, `7-8`) is a failure, and so is a value
    outside [0, 10] (`15`, `-2`, `999`): a judge that leaves the scale is not followed, never clipped.
  * Verdicts: `True` or `False`, any case, whitespace allowed.
"""

from __future__ import annotations

import re

_THINK_OPEN = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)
_NUMBER = re.compile(r"\s*([+-]?\d{1,3}(?:\.\d)?)\s*(?:/\s*10)?\s*")
_VERDICT = re.compile(r"\s*(true|false)\s*", re.IGNORECASE)


def verdict_part(text: str | None) -> str | None:
    """The text after the last `</think>` (or all of it when there is none); None if a think never closes."""
    if not text:
        return None
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        return text[closes[-1].end() :]
    if _THINK_OPEN.search(text):
        return None
    return text


def _tag_content(part: str, tag: str) -> str | None:
    """The content of `<tag>...</tag>` when the tag opens and closes exactly once in `part`, else None."""
    opens = re.findall(rf"<\s*{tag}\s*>", part, re.IGNORECASE)
    closes = re.findall(rf"<\s*/\s*{tag}\s*>", part, re.IGNORECASE)
    if len(opens) != 1 or len(closes) != 1:
        return None
    match = re.search(rf"<\s*{tag}\s*>(.*?)<\s*/\s*{tag}\s*>", part, re.IGNORECASE | re.DOTALL)
    return match.group(1) if match else None


def _score(part: str, tag: str) -> float | None:
    content = _tag_content(part, tag)
    if content is None:
        return None
    match = _NUMBER.fullmatch(content)
    if match is None:
        return None
    value = float(match.group(1))
    return value if 0.0 <= value <= 10.0 else None


def parse_pair_scores(text: str | None) -> tuple[float, float] | None:
    """`(score_A, score_B)` from `<score_A>a</score_A>` and `<score_B>b</score_B>`, or None (rules above)."""
    part = verdict_part(text)
    if part is None:
        return None
    a, b = _score(part, "score_A"), _score(part, "score_B")
    return None if a is None or b is None else (a, b)


def parse_point_score(text: str | None) -> float | None:
    """The score in `<score>s</score>`, or None (rules above)."""
    part = verdict_part(text)
    return None if part is None else _score(part, "score")


def parse_faithful(text: str | None) -> bool | None:
    """True / False from `<answer>True|False</answer>`, or None (rules above)."""
    part = verdict_part(text)
    if part is None:
        return None
    content = _tag_content(part, "answer")
    if content is None:
        return None
    match = _VERDICT.fullmatch(content)
    return None if match is None else match.group(1).lower() == "true"
