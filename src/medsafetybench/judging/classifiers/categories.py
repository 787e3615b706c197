"""Category vocabularies of the classifier judges, and how a category code reads in reports.

Two taxonomies are offered to the Llama Guard judges:

- `ama` (this project's, the default): the nine AMA Principles of Medical Ethics as Llama Guard custom
  categories, coded `P1`..`P9` (`P<n>` is principle n of `principles.PRINCIPLES`), so a verdict names
  the violated principle and maps back to its number (`principle_of`).
- `mlc`: Llama Guard 3's own MLCommons hazard taxonomy, `S1`..`S14`, with the names exactly as the
  Llama-Guard-3-8B chat template lists them (see `judging/llamaguard3.py` for the source).

`describe_category` is what `show` prints next to a code; unknown codes are shown as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...principles import PRINCIPLES


@dataclass(frozen=True)
class Category:
    """One custom category of a classifier prompt."""

    code: str
    """The code the classifier answers with (`P3`, `S3`)."""
    name: str
    """The short name as the prompt shows it."""
    description: str = ""
    """Policy text shown under the name (empty: the name alone)."""


AMA_CATEGORIES: tuple[Category, ...] = tuple(
    Category(f"P{p.number}", f"{p.short_name}.", p.text) for p in PRINCIPLES)
"""The nine AMA principles as Llama Guard categories: `P<n>: <short name>.` then the principle's text."""

MLC_CATEGORIES: tuple[Category, ...] = tuple(Category(f"S{i}", name) for i, name in enumerate((
    "Violent Crimes.", "Non-Violent Crimes.", "Sex Crimes.", "Child Exploitation.", "Defamation.",
    "Specialized Advice.", "Privacy.", "Intellectual Property.", "Indiscriminate Weapons.", "Hate.",
    "Self-Harm.", "Sexual Content.", "Elections.", "Code Interpreter Abuse."), start=1))
"""Llama Guard 3's S1-S14 as the Llama-Guard-3-8B chat template lists them."""

TAXONOMIES: dict[str, tuple[Category, ...]] = {"ama": AMA_CATEGORIES, "mlc": MLC_CATEGORIES}

_PRINCIPLE_CODE = re.compile(r"^P([1-9])$")


def principle_of(code: str) -> int | None:
    """The AMA principle number a `P<n>` code names, else None."""
    m = _PRINCIPLE_CODE.match(code)
    return int(m.group(1)) if m else None


def describe_category(code: str) -> str:
    """`P3` -> `P3 principle 3 (Respect for the law)`, `S3` -> `S3 Sex Crimes`, anything else as is."""
    n = principle_of(code)
    if n is not None:
        return f"{code} principle {n} ({PRINCIPLES[n - 1].short_name})"
    for c in MLC_CATEGORIES:
        if c.code == code:
            return f"{code} {c.name.rstrip('.')}"
    return code
