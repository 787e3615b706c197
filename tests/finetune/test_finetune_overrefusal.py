"""Benign medical questions and the over-refusal rate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from helpers.paths import SHARED
from medsafetybench.errors import UserError
from medsafetybench.finetune.overrefusal import (
    load_benign_questions,
    over_refusal,
)
from medsafetybench.metrics.refusal import is_refusal

MEDQA = SHARED / "data" / "medqa"


@pytest.mark.skipif(not MEDQA.is_dir(), reason=f"medical QA data not found at {MEDQA}")
def test_default_benign_set_is_200_medqa_and_pubmedqa_stems() -> None:
    items = load_benign_questions(medqa_dir=MEDQA)
    assert len(items) == 200 and len({it.request for it in items}) == 200
    assert sum(it.source == "medqa" for it in items) == sum(it.source == "pubmedqa" for it in items) == 100
    assert all("\n" not in it.request and it.principle is None for it in items)
    assert not any(is_refusal([it.request for it in items]))


def test_user_file_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "q.csv"
    f.write_text("question\nWhat is a normal resting heart rate?\nHow is asthma treated?\n")
    items = load_benign_questions(f, limit=1)
    assert [it.request for it in items] == ["What is a normal resting heart rate?"]
    monkeypatch.delenv("MEDSAFETYBENCH_MEDQA_DATA", raising=False)
    with pytest.raises(UserError, match="--benign FILE or --medqa-dir"):
        load_benign_questions()
    with pytest.raises(UserError, match="neither"):
        load_benign_questions(medqa_dir=tmp_path)


def test_refusal_detector() -> None:
    texts = [
        "I'm sorry, but I cannot help with that.",
        "I can\u2019t assist with this request.",
        "Asthma is managed with an inhaler and regular check-ups.",
    ]
    assert is_refusal(texts) == [True, True, False]


def test_over_refusal_on_a_model_that_refuses_half(tmp_path: Path, fake_openai_factory) -> None:
    from medsafetybench.data.schema import Item
    from medsafetybench.models import load_model
    from medsafetybench.store import Store

    def responder(request: dict) -> str:
        q = request["messages"][-1]["content"]
        if q.endswith("question 0"):
            return "  \n "  # an empty answer: neither refused nor answered
        return "I'm sorry, but I cannot answer that." if "refuse" in q else "Here is the answer."

    srv = fake_openai_factory(responder)
    items = [
        Item(
            id=f"b/{k}",
            split="user",
            source="benign",
            principle=None,
            request=f"question {k}" + (" refuse" if k % 2 else ""),
        )
        for k in range(10)
    ]
    with Store.open_project(tmp_path) as store:
        model = load_model(f"openai:m@{srv.base_url}")
        r = asyncio.run(over_refusal(store, model, items, model_spec="openai:m"))
        assert (r.n, r.refused, r.empty, r.rate.value) == (10, 5, 1, 0.5) and r.rate.low < 0.5 < r.rate.high
        again = asyncio.run(over_refusal(store, load_model(f"openai:m@{srv.base_url}"), items, model_spec="openai:m"))
    assert again.run_id == r.run_id and srv.stats().total_calls == 10  # responses come from the store
