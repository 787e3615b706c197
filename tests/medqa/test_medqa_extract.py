"""medqa.extract: the answer extractor over messy replies; unreadable ones are None (invalid), never guessed."""

from __future__ import annotations

import pytest

from medsafetybench.medqa.extract import extract_choice, generation_prompt

L = ("A", "B", "C", "D")
YNM = ("yes", "no", "maybe")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The answer is (B).", 1),
        ("B) Aspirin 81 mg daily", 1),
        ("**B**", 1),
        ("Answer: b", 1),
        ("B", 1),
        ("(c)", 2),
        ("C. Nephrotic syndrome", 2),
        ("Final answer: **C**", 2),
        ("The correct option is D", 3),
        ("I think it's B.", 1),
        ("A patient like this needs C.", 2),
        ("A", 0),
        ("Answer:\n\nD", 3),
        ("I'm sorry, but I can't help with that.", None),
        ("I cannot provide medical advice.", None),
        ("Either A or B could be right.", None),
        ("", None),
        ("The answer is A or C", None),
    ],
)
def test_letters(text: str, expected: int | None) -> None:
    assert extract_choice(text, L) == expected


def test_option_text_when_no_letter() -> None:
    opts = ("Aspirin", "Heparin", "Warfarin", "Clopidogrel")
    assert extract_choice("I would give heparin.", L, opts) == 1
    assert extract_choice("heparin or warfarin", L, opts) is None


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Yes.", 0),
        ("No, because the trial was small.", 1),
        ("The answer is maybe.", 2),
        ("**maybe**", 2),
        ("I cannot answer that.", None),
        ("yes or no", None),
    ],
)
def test_yes_no_maybe(text: str, expected: int | None) -> None:
    assert extract_choice(text, YNM) == expected


def test_generation_prompt_keeps_the_harness_prompt() -> None:
    p = generation_prompt("Question: Q\nA. w\nB. x\nC. y\nD. z\nAnswer:", L)
    assert p.endswith("Answer:") and "(A, B, C or D)" in p
    assert "yes, no or maybe" in generation_prompt("Abstract: a\nQuestion: q\nAnswer:", YNM)
