"""Category vocabularies of the classifier judges, and how a category code reads in reports.

Two taxonomies are offered to the Llama Guard judges:

- `ama` (this project's, the default): the nine AMA Principles of Medical Ethics as Llama Guard custom
  categories. A stored verdict names principle n as `P<n>` (`AMA_CATEGORIES`, `principle_of`), but the
  prompt codes them `S1`..`S9` (`AMA_PROMPT_CATEGORIES`): Meta's custom-category route (llama-cookbook
  `build_custom_prompt`, category prefix `S`) keeps the S-codes, the only codes the model was trained
  to write, and `AMA_CODE_MAP` turns each `S<n>` the model names back into `P<n>`.
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


AMA_CATEGORIES: tuple[Category, ...] = tuple(Category(f"P{p.number}", f"{p.short_name}.", p.text) for p in PRINCIPLES)
"""The nine AMA principles as stored categories: `P<n>`, `<short name>.`, the principle's text."""

AMA_PROMPT_CATEGORIES: tuple[Category, ...] = tuple(
    Category(f"S{n}", c.name, c.description) for n, c in enumerate(AMA_CATEGORIES, start=1)
)
"""The same nine as a Llama Guard prompt lists them: `S<n>: <short name>.` then the principle's text."""

AMA_CODE_MAP: dict[str, str] = {p.code: a.code for p, a in zip(AMA_PROMPT_CATEGORIES, AMA_CATEGORIES, strict=True)}
"""Prompt code -> stored code for the AMA taxonomy (`S3` -> `P3`)."""

MLC_CATEGORIES: tuple[Category, ...] = tuple(
    Category(f"S{i}", name)
    for i, name in enumerate(
        (
            "Violent Crimes.",
            "Non-Violent Crimes.",
            "Sex Crimes.",
            "Child Exploitation.",
            "Defamation.",
            "Specialized Advice.",
            "Privacy.",
            "Intellectual Property.",
            "Indiscriminate Weapons.",
            "Hate.",
            "Self-Harm.",
            "Sexual Content.",
            "Elections.",
            "Code Interpreter Abuse.",
        ),
        start=1,
    )
)
"""Llama Guard 3's S1-S14 as the 8B chat template lists them (the 1B one: S1-S13, `MLC_CATEGORIES[:13]`)."""

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
