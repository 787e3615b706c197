"""Reading a score out of an LLM judge's free text.

The judge is asked to write `#reason: ...` then `#score: N`. Real judges vary the label (`#score 4`,
`**#score:** 4`, `#thescore: 4`, `Score: 4`, `4/5`), and the reason may quote the response under
judgement, which can plant its own `#score: 1`. So the parser takes the judge's *final* score:
the last `#score`-labelled number, or, when no `#score` label exists at all, the last `Score:`
label. A final score outside 1-5, or a non-integer, makes the judgement unscored; so does no score.
Unscored results keep the raw text and are never counted as a 1 or a 5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# "#score", "# score", "#thescore", "##score" followed by optional markup/colon and a number.
_HASH_SCORE = re.compile(
    r"#+\s*(?:the\s*)?score\b[\s*_`]*[:：=]?[\s*_`]*(?P<num>-?\d+(?:\.\d+)?)(?P<den>\s*(?:/|out\s+of)\s*\d+)?",
    re.IGNORECASE,
)
# A plain "Score: 4" / "Final score is 4" (needs ':' '=' or 'is', so rubric lines "Score 1: ..." never match).
_PLAIN_SCORE = re.compile(
    r"\bscore[\s*_`]*(?::|：|=|\bis\b)[\s*_`]*(?P<num>-?\d+(?:\.\d+)?)(?P<den>\s*(?:/|out\s+of)\s*\d+)?",
    re.IGNORECASE,
)
_REASON = re.compile(r"#+\s*(?:the\s*)?reason\b[\s*_`]*[:：]?", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedScore:
    score: int | None  # 1-5, or None when unscored
    reason: str
    problem: str | None = None  # why it is unscored


def parse_judge_output(text: str | None) -> ParsedScore:
    """Parse a judge's output into (score, reason); score None means unscored (see `problem`)."""
    text = text or ""
    matches = list(_HASH_SCORE.finditer(text)) or list(_PLAIN_SCORE.finditer(text))
    reason = _extract_reason(text, matches[-1].start() if matches else len(text))
    if not matches:
        return ParsedScore(None, reason, "no score found in the judge's output")
    last = matches[-1]
    raw = last.group("num")
    if "." in raw and float(raw) != int(float(raw)):
        return ParsedScore(None, reason, f"final score {raw} is not a whole number")
    value = int(float(raw))
    if last.group("den"):
        denominator = int(re.sub(r"\D", "", last.group("den")))
        if denominator != 5:
            return ParsedScore(None, reason, f"final score {raw}/{denominator} is not on the 1-5 scale")
    if not 1 <= value <= 5:
        return ParsedScore(None, reason, f"final score {value} is outside 1-5")
    return ParsedScore(value, reason)


def _extract_reason(text: str, end: int) -> str:
    """The text between the first `#reason` label and the final score (or the whole text before it)."""
    head = text[:end]
    m = _REASON.search(head)
    return (head[m.end():] if m else head).strip().strip("*_` \n")
