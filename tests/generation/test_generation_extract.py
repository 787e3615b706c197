"""Extraction of list items from generator replies: a table of the list shapes generators write."""

from __future__ import annotations

import pytest

from helpers.paths import SHARED
from medsafetybench.generation.extract import extract_items

DATA = SHARED / "data" / "med-safety-bench"

ABC = ["Request about topic A", "Request about topic B", "Request about topic C"]

CASES = [
    ("dot", "1. Request about topic A\n2. Request about topic B\n3. Request about topic C", ABC),
    ("paren", "1) Request about topic A\n2) Request about topic B\n3) Request about topic C", ABC),
    ("both parens", "(1) Request about topic A\n(2) Request about topic B\n(3) Request about topic C", ABC),
    ("colon", "1: Request about topic A\n2: Request about topic B\n3: Request about topic C", ABC),
    ("hash", "#1. Request about topic A\n#2. Request about topic B\n#3. Request about topic C", ABC),
    ("dash bullets", "- Request about topic A\n- Request about topic B\n- Request about topic C", ABC),
    ("star bullets", "* Request about topic A\n* Request about topic B\n* Request about topic C", ABC),
    ("unicode bullets", "• Request about topic A\n• Request about topic B\n• Request about topic C", ABC),
    ("bold numbers", "**1.** Request about topic A\n**2.** Request about topic B\n**3.** Request about topic C", ABC),
    (
        "bold whole item",
        "**1. Request about topic A**\n**2. Request about topic B**\n**3. Request about topic C**",
        ABC,
    ),
    (
        "heading numbers",
        "### 1. Request about topic A\n### 2. Request about topic B\n### 3. Request about topic C",
        ABC,
    ),
    ("double quotes", '1. "Request about topic A"\n2. "Request about topic B"\n3. "Request about topic C"', ABC),
    (
        "curly quotes",
        "1. \u201cRequest about topic A\u201d\n2. \u201cRequest about topic B\u201d\n"
        "3. \u201cRequest about topic C\u201d",
        ABC,
    ),
    ("quote then comma", '1. "Request about topic A",\n2. "Request about topic B",\n3. "Request about topic C"', ABC),
    (
        "Request N:",
        "Request 1: Request about topic A\nRequest 2: Request about topic B\nRequest 3: Request about topic C",
        ABC,
    ),
    (
        "preamble and closing",
        "Sure, here are three requests that violate the principle:\n\n1. Request about topic A\n"
        "2. Request about topic B\n3. Request about topic C\n\nPlease note that these are for research only.",
        ABC,
    ),
    ("blank lines between", "1. Request about topic A\n\n2. Request about topic B\n\n3. Request about topic C\n", ABC),
    ("windows newlines", "1. Request about topic A\r\n2. Request about topic B\r\n3. Request about topic C", ABC),
    (
        "multi-line items",
        "1. Request about topic A,\n   continued on an indented line\n2. Request about topic B\nwhich wraps "
        "without indent\n3. Request about topic C",
        [
            "Request about topic A, continued on an indented line",
            "Request about topic B which wraps without indent",
            "Request about topic C",
        ],
    ),
    (
        "bold label",
        "1. **Label A:** Request about topic A\n2. **Label B:** Request about topic B",
        ["Label A: Request about topic A", "Label B: Request about topic B"],
    ),
    (
        "numbers beat dashes inside",
        "1. Request about topic A - with a dash\n2. Request about topic B",
        ["Request about topic A - with a dash", "Request about topic B"],
    ),
    (
        "closing paragraph after list",
        "1. Request about topic A\n2. Request about topic B\n\nThese requests violate the principle because ...",
        ["Request about topic A", "Request about topic B"],
    ),
    ("refusal, no list", "I'm sorry, but I cannot help with writing such requests.", []),
    ("repeats kept once", "1. Request about topic A\n2. Request about topic A", ["Request about topic A"]),
    ("too short dropped", "1. ok\n2. Request about topic B", ["Request about topic B"]),
]


@pytest.mark.parametrize(("name", "reply", "expected"), CASES, ids=[c[0] for c in CASES])
def test_extraction_table(name: str, reply: str, expected: list[str]) -> None:
    assert extract_items(reply) == expected


def test_real_benchmark_requests_round_trip() -> None:
    """Requests from the release, written as a numbered, quoted, bold list, come back unchanged."""
    path = DATA / "datasets" / "test" / "gpt4" / "med_safety_demonstrations_category_2.csv"
    if not path.is_file():
        pytest.skip(f"shared benchmark data not found at {path}")
    import csv

    with path.open(encoding="utf-8", newline="") as f:
        reqs = [" ".join(r["harmful_medical_request"].split()) for r in csv.DictReader(f)][:8]
    styles = ["{i}. {r}", '{i}) "{r}"', "**{i}.** {r}", "- {r}"]
    for style in styles:
        reply = "Sure, here they are:\n\n" + "\n".join(style.format(i=i + 1, r=r) for i, r in enumerate(reqs))
        assert extract_items(reply) == reqs, style
