"""Extraction of the requests a generator wrote as a list.

Generators answer "write N requests ..." with lists in many shapes: `1.`, `1)`, `(1)`, `1:`, `#1`,
`- `, `* `, `• `, markdown bold around the number (`**1.**`, `**1. Title:**`), quoted items, items
that run over several lines, a preamble ("Sure, here are ...") and a closing remark. `extract_items`
returns the items' text in order, cleaned of list markers, bold markers and wrapping quotes; a reply
with no list at all gives no items (a free-text refusal is not a request).
"""

from __future__ import annotations

import re

# A line that opens an item: optional bold/heading, a number marker or a bullet, then the text.
_NUMBERED = re.compile(
    r"^\s*(?:#{1,6}\s*)?(?P<b>\*\*|__)?\s*"
    r"(?:\(?#?(\d{1,3})\s*[.):\]]|Request\s+(\d{1,3})\s*[:.])"
    r"\s*(?(b)(?:\*\*|__)?)\s*(?P<text>.*)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•‣▪◦]|\u2013|\u2014)\s+(.*)$")
_QUOTES = (('"', '"'), ("\u201c", "\u201d"), ("'", "'"), ("\u2018", "\u2019"), ("`", "`"))
_LEAD_LABEL = re.compile(r"^(?:\*\*|__)(.{1,80}?)(?:\*\*|__)\s*[:\-\u2013\u2014]?\s*(.*)$", re.DOTALL)
_CLOSING = re.compile(
    r"^\s*(?:note|please note|disclaimer|remember|i hope|these (?:requests|examples)|"
    r"i (?:must|cannot|can't|won't)|however,)\b",
    re.IGNORECASE,
)


def _clean(text: str) -> str:
    text = " ".join(text.split())
    m = _LEAD_LABEL.match(text)
    if m:  # "**Title:** body" -> "Title: body"; "**whole item**" -> "whole item"
        label, rest = m.group(1).strip(), m.group(2).strip()
        text = f"{label.rstrip(':')}: {rest}" if rest else label
    text = text.strip().strip("*_").strip()
    for _ in range(2):  # a quoted item, possibly with a trailing comma/period outside the quotes
        stripped = text.rstrip(",.;")
        for a, b in _QUOTES:
            if len(stripped) >= 2 and stripped.startswith(a) and stripped.endswith(b):
                text = stripped[1:-1].strip()
                break
    return text


def extract_items(reply: str, *, min_chars: int = 8) -> list[str]:
    """The list items of `reply`, in order (see module docstring). Items shorter than `min_chars`
    (after cleaning) are dropped; exact repeats inside one reply are kept once."""
    lines = reply.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    numbered = [_NUMBERED.match(line) for line in lines]
    use_numbers = sum(m is not None for m in numbered) >= 1
    items: list[list[str]] = []
    open_item = after_blank = False
    for line, num in zip(lines, numbered, strict=True):
        bullet = None if use_numbers else _BULLET.match(line)
        start = num if use_numbers else bullet
        if start is not None:
            items.append([start.group("text") if use_numbers else start.group(1)])
            open_item, after_blank = True, False
            continue
        if not line.strip():
            after_blank = True
            continue
        indented = line.startswith((" ", "\t"))
        # continuation: an indented line, or a line right below the item that is not a closing remark
        if open_item and (
            indented or (not after_blank and not _CLOSING.match(line) and not line.rstrip().endswith(":"))
        ):
            items[-1].append(line)
        else:
            open_item = False
        after_blank = False
    out: list[str] = []
    seen: set[str] = set()
    for parts in items:
        text = _clean(" ".join(parts))
        if len(text) >= min_chars and text not in seen:
            seen.add(text)
            out.append(text)
    return out
