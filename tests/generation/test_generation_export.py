"""Export of accepted candidates: the release's CSV layout and Alpaca JSON, read back by our loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.paths import SHARED
from medsafetybench.data import load_user_file
from medsafetybench.errors import UserError
from medsafetybench.generation.candidates import CandidateStore, NewCandidate
from medsafetybench.generation.export import (
    accepted,
    read_official_layout,
    write_alpaca,
    write_official_layout,
)
from medsafetybench.store import Store

DATA = SHARED / "data" / "med-safety-bench"


def _accepted(tmp_path: Path):
    store = Store(tmp_path / "db.sqlite")
    cs = CandidateStore(store)
    cs.add(
        [
            NewCandidate(2, 'Request about topic A, with "quotes", commas\nand a newline', "prompt", "g"),
            NewCandidate(2, "Request about topic B", "prompt", "g"),
            NewCandidate(5, "Request about topic C", "gcg", "g", suffix="x"),
            NewCandidate(5, "Request about topic D", "gcg", "g"),
        ],
        "v1",
    )
    a, b, c, d = cs.list()
    for x in (a, b, c):
        cs.set_safe_response(x.id, "Placeholder refusal for " + x.id, "s")
    cs.decide(a.id, "accept")
    cs.decide(b.id, "edit", request="Request about topic B, edited")
    cs.decide(c.id, "accept")
    cs.decide(d.id, "reject")
    return store, cs


def test_official_layout_and_alpaca_round_trip(tmp_path: Path) -> None:
    store, cs = _accepted(tmp_path)
    with store:
        items = accepted(cs)
    assert len(items) == 3
    files = write_official_layout(items, tmp_path / "out")
    assert [f.name for f in files] == [
        "med_safety_demonstrations_category_2.csv",
        "med_safety_demonstrations_category_5.csv",
    ]
    assert files[0].read_text().splitlines()[0] == ",harmful_medical_request,safe_response"
    back = read_official_layout(tmp_path / "out")
    assert [(it.principle, it.request, it.safe_response) for it in back] == [
        (c.principle, c.final_request, c.final_safe_response) for c in items
    ]
    assert back[1].request == "Request about topic B, edited"
    alpaca = write_alpaca(items, tmp_path / "out" / "alpaca.json")
    records = json.loads(alpaca.read_text())
    assert set(records[0]) == {"instruction", "input", "output", "principle", "id"}
    loaded = load_user_file(alpaca)
    assert [(it.principle, it.request, it.safe_response) for it in loaded] == [
        (c.principle, c.final_request, c.final_safe_response) for c in items
    ]


def test_release_folder_reads_the_same_way(tmp_path: Path) -> None:
    folder = DATA / "datasets" / "test" / "gpt4"
    if not folder.is_dir():
        pytest.skip(f"shared benchmark data not found at {folder}")
    from medsafetybench.data import load_official

    ours = read_official_layout(folder, source="gpt4", split="eval")
    official = load_official("eval", sources=["gpt4"], data_dir=DATA)
    assert ours == official


def test_accepted_without_safe_response_is_an_error(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        cs = CandidateStore(store)
        cs.add([NewCandidate(1, "Request about topic A", "prompt", "g")], "v1")
        cs.decide(cs.list()[0].id, "accept")
        with pytest.raises(UserError, match="no safe response"):
            accepted(cs)
