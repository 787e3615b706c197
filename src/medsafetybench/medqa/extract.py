"""Generation mode for chat APIs without log-probabilities: the instruction added to each question and
the extractor that reads the chosen option out of a free-text reply.

The extractor accepts the usual shapes (`B`, `(B)`, `B) ...`, `B. ...`, `**B**`, `Answer: b`,
`The answer is (B).`, `Option B`, `yes` / `No.` for PubMedQA, or the exact text of one option) and
returns None when it cannot tell: a refusal, no option, or two different options named with equal
standing. An unreadable answer is counted `invalid`, never guessed.
"""

from __future__ import annotations

import re

EXTRACT_VERSION = "x1"
GEN_MAX_TOKENS = 64


def instruction(choices: tuple[str, ...]) -> str:
    if choices == ("yes", "no", "maybe"):
        return "Answer the question about the abstract below with one word: yes, no or maybe."
    letters = ", ".join(choices[:-1]) + " or " + choices[-1]
    return f"Answer the multiple-choice question below with the letter of the correct option ({letters}) only."


def generation_prompt(prompt: str, choices: tuple[str, ...]) -> str:
    """The user message: the instruction, then the harness prompt (ending in 'Answer:')."""
    return f"{instruction(choices)}\n\n{prompt}"


_MARKUP = re.compile(r"[*_`#]+")


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", _MARKUP.sub("", text)).strip()


def extract_choice(text: str, choices: tuple[str, ...], options: tuple[str, ...] = ()) -> int | None:
    """Index of the option a reply chose, or None when it is unreadable (never a guess)."""
    t = _clean(text or "")
    if not t:
        return None
    if all(len(c) == 1 for c in choices):
        return _letter(t, choices, options)
    return _word(t, choices)


def _letter(t: str, choices: tuple[str, ...], options: tuple[str, ...]) -> int | None:
    cls = "".join(choices)
    lower = cls.lower()
    # the whole reply is a letter: "B", "(b)", "B."
    m = re.fullmatch(rf"[\(\[]?([{cls}{lower}])[\)\]]?[.:]?", t)
    if m:
        return choices.index(m.group(1).upper())
    if re.search(rf"(?<![\w'’])[{cls}](?:\)|\.)?\s*(?:or|and|/)\s*\(?[{cls}](?![\w'’])", t):
        return None  # hedged between options ("A or C")
    # "answer is (B)", "Answer: b", "correct option is B", "final answer: C"
    anchored = re.findall(
        r"\b(?:answer|option|choice)\s*(?:is|would "
        rf"be|:|=|-)?\s*(?:option|choice)?\s*[\(\[]?([{cls}{lower}])\b(?![\'’]\w)",
        t,
        flags=re.IGNORECASE,
    )
    found = {a.upper() for a in anchored}
    if len(found) == 1:
        return choices.index(found.pop())
    if len(found) > 1:
        return None
    # a leading option label: "B) ...", "B. ...", "(B) ...", "B: ..."
    m = re.match(rf"[\(\[]?([{cls}])(?:[\)\]:.]|\s*-)\s", t + " ")
    if m:
        return choices.index(m.group(1))
    # bare capital letters standing alone ("I pick B." / "B is right"): only if exactly one is named
    alone = {a for a in re.findall(rf"(?<![\w'’])([{cls}])(?![\w'’])", t) if not (a == "A" and _article(t))}
    if len(alone) == 1:
        return choices.index(alone.pop())
    # the text of exactly one option
    if options:
        hits = [i for i, o in enumerate(options) if o.strip() and _clean(o).lower() in t.lower()]
        if len(hits) == 1:
            return hits[0]
    return None


def _article(t: str) -> bool:
    """True when a standalone 'A' in the text is used as the article ('A patient ...')."""
    return bool(re.search(r"(?:^|[.!?]\s+)A\s+[a-z]", t))


def _word(t: str, choices: tuple[str, ...]) -> int | None:
    low = t.lower()
    alt = "|".join(re.escape(c) for c in choices)
    m = re.fullmatch(rf"({alt})\b[.!]?", low)
    if m:
        return choices.index(m.group(1))
    anchored = {a for a in re.findall(rf"\banswer\s*(?:is|:)?\s*({alt})\b", low)}
    if len(anchored) == 1:
        return choices.index(anchored.pop())
    m = re.match(rf"({alt})(?:[,.;:!]|$)", low)
    if m:
        return choices.index(m.group(1))
    named = {w for w in re.findall(rf"\b({alt})\b", low)}
    if len(named) == 1:
        return choices.index(named.pop())
    return None
