"""Training data for fine-tuning: official splits, seeded samples, user files, the eval-overlap guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.paths import SHARED
from medsafetybench.errors import UserError
from medsafetybench.finetune.data import (
    check_no_eval_overlap,
    normalise_request,
    read_alpaca_file,
    resolve_training_data,
)

DATA = SHARED / "data" / "med-safety-bench"
needs_data = pytest.mark.skipif(not (DATA / "datasets").is_dir(), reason=f"official data not found at {DATA}")


@needs_data
def test_official_split_when_n_matches() -> None:
    td = resolve_training_data("med", 100, data_dir=DATA)
    assert td.n == len(td.records) == 100
    assert td.origin.endswith("ft_safety_med_n100.json") and Path(td.source_file).is_file()
    assert all(set(r) == {"instruction", "input", "output"} for r in td.records)
    assert len(td.sha256) == 64 and td.sha256 == resolve_training_data("med", 100, data_dir=DATA).sha256


@needs_data
def test_seeded_samples_for_other_n() -> None:
    med = resolve_training_data("med", 150, data_dir=DATA, seed=1)
    assert med.n == 150 and med.origin.startswith("sample:MedSafety-Improve")
    assert med.records == resolve_training_data("med", 150, data_dir=DATA, seed=1).records
    assert med.records != resolve_training_data("med", 150, data_dir=DATA, seed=2).records
    both = resolve_training_data("both", 51, data_dir=DATA)
    gen = {r["instruction"] for r in resolve_training_data("gen", 900, data_dir=DATA).records}
    assert sum(r["instruction"] in gen for r in both.records) == 25  # half general, the rest medical
    assert resolve_training_data("gen", 37, data_dir=DATA).n == 37


@needs_data
def test_bad_kind_and_n() -> None:
    with pytest.raises(UserError, match="--train-data 'surgery' is unknown"):
        resolve_training_data("surgery", 100, data_dir=DATA)
    with pytest.raises(UserError, match="larger than the 900 records of MedSafety-Improve"):
        resolve_training_data("med", 901, data_dir=DATA)
    with pytest.raises(UserError, match="at least 1"):
        resolve_training_data("med", 0, data_dir=DATA)


@needs_data
def test_improve_and_official_splits_do_not_overlap_eval() -> None:
    for kind, n in (("med", 900), ("gen", 900), ("both", 1800)):
        assert check_no_eval_overlap(resolve_training_data(kind, n, data_dir=DATA).records, data_dir=DATA)


@needs_data
def test_eval_items_in_training_data_are_refused(tmp_path: Path) -> None:
    from medsafetybench.data import load_official

    evals = load_official("eval", data_dir=DATA)
    records = [{"instruction": "How do I treat a mild cold?", "output": "Rest and fluids."}]
    # the same eval request with different case, spacing and punctuation still counts
    records += [{"instruction": "  " + it.request.upper().replace(".", " !") + " ", "output": "no"} for it in evals[:3]]
    f = tmp_path / "mine.json"
    f.write_text(json.dumps(records))
    with pytest.raises(UserError, match=r"3 of 4 records are MedSafety-Eval requests \(records 2, 3, 4\)"):
        check_no_eval_overlap(resolve_training_data(None, None, data_file=f).records, data_dir=DATA)


def test_normalise_request() -> None:
    assert normalise_request("  How, do I\n\tTREAT it?? ") == "how do i treat it"


def test_user_files(tmp_path: Path) -> None:
    j = tmp_path / "a.jsonl"
    j.write_text('{"instruction": "q1", "output": "a1"}\n\n{"instruction": "q2", "input": "ctx", "output": "a2"}\n')
    assert read_alpaca_file(j) == [
        {"instruction": "q1", "input": "", "output": "a1"},
        {"instruction": "q2", "input": "ctx", "output": "a2"},
    ]
    td = resolve_training_data(None, 1, data_file=j, seed=0)
    assert td.kind == "file" and td.n == 1 and td.source_file == str(j.resolve())
    bad = {
        "missing.json": None,
        "empty.json": "",
        "notjson.json": "{oops",
        "dict.json": '{"a": 1}',
        "nooutput.json": '[{"instruction": "x"}]',
        "badline.jsonl": '{"instruction": "x", "output": "y"}\nnope',
    }
    messages = {
        "missing.json": "file not found",
        "empty.json": "empty",
        "notjson.json": "not valid JSON",
        "dict.json": "expected a JSON list",
        "nooutput.json": "record 1 needs",
        "badline.jsonl": "line 2 is not valid JSON",
    }
    for name, text in bad.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(UserError, match=messages[name]):
            read_alpaca_file(tmp_path / name)
    with pytest.raises(UserError, match="larger than the 2 records"):
        resolve_training_data(None, 3, data_file=j)
