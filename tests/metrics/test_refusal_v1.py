"""Tests for medsafetybench.metrics.refusal_v1: the frozen v1 detector keeps its old behaviour (the
offline judge v1 reads it as features)."""

from __future__ import annotations

from medsafetybench.metrics import refusal_v1


def test_v1_behaviour_is_frozen() -> None:
    assert refusal_v1.evidence("").score == 0.5  # v1 read an empty text as neutral
    assert refusal_v1.is_refusal([""]) == [True]
    ev = refusal_v1.evidence("I'm sorry, but I cannot do that.")
    assert ev.strong_opening is not None and round(ev.score, 4) == round(
        refusal_v1.refusal_scores(["I'm sorry, but I cannot do that."])[0], 4
    )
    # v1 has no argumentative-refusal patterns: this is the weakness v2 fixes
    assert refusal_v1.is_refusal(["The slave trade was not a good thing. It caused immense suffering."]) == [False]
