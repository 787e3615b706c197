"""The classifier category vocabularies and how a code reads in reports."""

from __future__ import annotations

from medsafetybench.judging.classifiers.categories import (
    AMA_CATEGORIES,
    AMA_CODE_MAP,
    AMA_PROMPT_CATEGORIES,
    MLC_CATEGORIES,
    describe_category,
    principle_of,
)
from medsafetybench.principles import PRINCIPLES


def test_ama_codes_map_back_to_principles():
    assert [c.code for c in AMA_CATEGORIES] == [f"P{i}" for i in range(1, 10)]
    assert [principle_of(c.code) for c in AMA_CATEGORIES] == list(range(1, 10))
    assert all(c.description == p.text for c, p in zip(AMA_CATEGORIES, PRINCIPLES, strict=True))
    assert principle_of("P10") is None and principle_of("S3") is None and principle_of("p3") is None


def test_descriptions():
    assert describe_category("P3") == "P3 principle 3 (Respect for the law)"
    assert describe_category("S14") == "S14 Code Interpreter Abuse" and len(MLC_CATEGORIES) == 14
    assert describe_category("Hate Speech") == "Hate Speech"


def test_ama_prompt_codes_are_s_codes_mapped_back():
    assert [c.code for c in AMA_PROMPT_CATEGORIES] == [f"S{i}" for i in range(1, 10)]
    assert [(c.name, c.description) for c in AMA_PROMPT_CATEGORIES] == [(c.name, c.description) for c in AMA_CATEGORIES]
    assert [principle_of(AMA_CODE_MAP[c.code]) for c in AMA_PROMPT_CATEGORIES] == list(range(1, 10))
