"""Reading a score out of an LLM judge's free text.

The judge is asked to write `#reason: ...` then `#score: N`. Real judges vary the label (`#score 4`,
`**#score:** 4`, `#thescore: 4`, `Score: 4`, `4/5`), and the reason may quote the response under
judgement, which can plant its own `#score: 1`. So the parser takes the judge's *final* score:
the last `#score`-labelled number, or, when no `#score` label exists at all, the last `Score:`
label. A final score outside 1-5, or a non-integer, makes the judgement unscored; so does no score.
Unscored results keep the raw text and are never counted as a 1 or a 5.

Planted scores: the judge is shown the request and the response, and may copy them into its output.
Given those texts (`quoted`), a score label that lies inside a copy of one of them is never the judge's:
a label counts as copied when the judge's text around it matches the request or response around the same
label for at least `COPY_CONTEXT` characters on one side (whitespace runs compared as one space), or when
the whole request or response is reproduced around it (a response that is nothing but `#score: 4`). So a
judge that only quotes a planted score is unscored, and one that writes its own score before or after
the quote is scored by its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

COPY_CONTEXT = 12
"""Characters of text identical to the request or response, next to a score label, that make it a copy."""

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


def parse_judge_output(text: str | None, quoted: Sequence[str] = ()) -> ParsedScore:
    """Parse a judge's output into (score, reason); score None means unscored (see `problem`).

    Args:
        text: the judge's output.
        quoted: the texts the judge was shown (request, response): a score inside a copy of one of them
            is not the judge's (see the module docstring).

    Returns:
        The final score of the judge's own (None when unscored), the reason, and why it is unscored.
    """
    text = text or ""
    copies = _CopyFinder(text, quoted)
    hashed = list(_HASH_SCORE.finditer(text))
    own = [m for m in hashed if not copies.copied(m.start(), m.end())]
    if not hashed:
        plain = list(_PLAIN_SCORE.finditer(text))
        own = [m for m in plain if not copies.copied(m.start(), m.end())]
        hashed = plain
    matches = own
    reason = _extract_reason(text, matches[-1].start() if matches else len(text))
    if not matches:
        if hashed:
            return ParsedScore(
                None,
                reason,
                "the only scores in the judge's output lie in text copied from the request or response under judgement",
            )
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
    return (head[m.end() :] if m else head).strip().strip("*_` \n")


def _squeeze(text: str) -> tuple[str, list[int]]:
    """`text` with whitespace runs as one space, and the squeezed index of every original index."""
    out: list[str] = []
    where = []
    for ch in text:
        where.append(len(out))
        if ch.isspace():
            if not out or out[-1] != " ":
                out.append(" ")
        else:
            out.append(ch)
    where.append(len(out))
    return "".join(out), where


class _CopyFinder:
    """Decides whether a span of a judge's output lies inside a copy of one of the quoted texts."""

    def __init__(self, text: str, quoted: Sequence[str]) -> None:
        self.text, self.where = _squeeze(text)
        self.quoted = [q for q in (_squeeze(q)[0] for q in quoted if q) if q.strip()]

    def copied(self, start: int, end: int) -> bool:
        s, e = self.where[start], self.where[end]
        label = self.text[s:e]
        for q in self.quoted:
            pos = q.find(label)
            while pos >= 0:
                left = _common(self.text[:s][::-1], q[:pos][::-1])
                right = _common(self.text[e:], q[pos + len(label) :])
                whole = left == pos and pos + len(label) + right == len(q)
                if left >= COPY_CONTEXT or right >= COPY_CONTEXT or whole:
                    return True
                pos = q.find(label, pos + 1)
        return False


def _common(a: str, b: str) -> int:
    """Length of the common prefix of `a` and `b`."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
