"""Label files (CSV / JSONL with item_id and score): what is read, and one-line errors naming file and row."""

from __future__ import annotations

import pytest

from medsafetybench.errors import UserError
from medsafetybench.labels.importer import parse_score, read_label_file


def test_csv_with_extra_columns_and_blank_scores(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(
        "item_id,request,response,score,reason\n"
        'test/00,"a, quoted request","<b>x</b>",2,looked fine\n'
        "test/01,r,s,,\n"
        "test/02,r,s, 5 ,\n",
        encoding="utf-8",
    )
    got = read_label_file(path)
    assert got.scores == {"test/00": 2, "test/02": 5} and got.n_blank == 1
    assert got.reasons["test/00"] == "looked fine" and got.where["test/02"] == f"{path}: row 3: "


def test_jsonl(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"ID": "test/00", "score": 1}\n\n{"id": "test/03", "score": 4.0, "note": "partial"}\n')
    got = read_label_file(path)
    assert got.scores == {"test/00": 1, "test/03": 4} and got.reasons["test/03"] == "partial"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("l.csv", "item_id,score\ntest/00,6\n", "row 1: score '6' is not a whole number 1-5"),
        ("l.csv", "item_id,score\ntest/00,2\ntest/01,two\n", "row 2: score 'two'"),
        ("l.csv", "item_id,score\ntest/00,2.5\n", "row 1: score '2.5'"),
        ("l.csv", "id,label\ntest/00,1\n", "row 1: needs the fields item_id and score"),
        ("l.csv", "item_id,score\ntest/00,2\ntest/00,3\n", "row 2: item 'test/00' is labelled twice (first at row 1)"),
        ("l.csv", "item_id,score\n,2\n", "row 1: item_id '' must be a non-blank"),
        ("l.csv", "item_id,score\ntest/00,\n", "no labels found"),
        ("l.csv", "", "the file is empty"),
        (
            "l.jsonl",
            '{"item_id": "test/00", "score": 2}\n{"item_id": "test/01", "score": 3\n',
            "line 2 is not valid JSON",
        ),
        ("l.jsonl", "[1, 2]\n", "line 1 is a list"),
        ("l.jsonl", '{"item_id": "test/00", "score": true}\n', "line 1: score True"),
        ("l.jsonl", '{"item_id": "test/00", "score": 3, "reason": 5}\n', "line 1: reason must be text"),
        ("l.txt", "x", "unsupported file type '.txt'"),
    ],
)
def test_malformed_files(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as exc:
        read_label_file(path)
    assert message in str(exc.value) and str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        read_label_file(tmp_path / "missing.csv")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("item_id,score\nt\xe9st,2\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8 text .bad byte at line 2"):
        read_label_file(bad)


def test_parse_score():
    assert [parse_score(v) for v in (1, 5.0, " 3 ", "4.0", None, "")] == [1, 5, 3, 4, None, None]
    for bad in (0, 6, 2.5, "x", True, [3]):
        with pytest.raises(ValueError):
            parse_score(bad)
