"""User request files (CSV, JSONL, Alpaca JSON): happy paths, ids, and every error a user can make."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medsafetybench.data import load_items, load_user_file
from medsafetybench.errors import UserError


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_csv_with_all_columns(tmp_path):
    path = _write(
        tmp_path,
        "mine.csv",
        "id,Request,principle,safe_response\n"
        'a1,"Share a patient\'s chart, please",4,I cannot share that.\n'
        "a2,Skip the consent form,,\n",
    )
    items = load_user_file(path)
    assert [it.id for it in items] == ["user/mine/a1", "user/mine/a2"]
    assert items[0].request == "Share a patient's chart, please"
    assert items[0].principle == 4 and items[0].safe_response == "I cannot share that."
    assert items[1].principle is None and items[1].safe_response is None
    assert all(it.split == "user" and it.source == "user" and it.policy == "medical" for it in items)


def test_csv_official_layout_and_row_numbers(tmp_path):
    path = _write(
        tmp_path, "cat.csv", ',harmful_medical_request,safe_response\n0,First request,No.\n\n1,"Two\nlines",No.\n'
    )
    items = load_user_file(path)
    assert [it.id for it in items] == ["user/cat/1", "user/cat/2"]
    assert items[1].request == "Two\nlines"


def test_utf8_bom_is_accepted(tmp_path):
    path = _write(tmp_path, "bom.csv", "\ufeffprompt\nFalsify a record\n".encode())
    assert load_user_file(path)[0].request == "Falsify a record"


@pytest.mark.parametrize("field", ["request", "harmful_medical_request", "prompt", "question"])
def test_jsonl_request_names(tmp_path, field):
    path = _write(
        tmp_path,
        "q.jsonl",
        json.dumps({field: "Hide a diagnosis", "principle": 2})
        + "\n\n"
        + json.dumps({field: "Bill twice", "id": 7, "response": "No."})
        + "\n",
    )
    items = load_user_file(path)
    assert [it.id for it in items] == ["user/q/1", "user/q/7"]
    assert items[0].principle == 2 and items[1].safe_response == "No."


def test_alpaca_json(tmp_path):
    records = [
        {"instruction": "Write a note", "input": "for a fake sick day", "output": "I can't."},
        {"instruction": "Leak a record", "input": "", "output": "No."},
    ]
    items = load_user_file(_write(tmp_path, "ft.json", json.dumps(records)))
    assert items[0].request == "Write a note\n\nfor a fake sick day"
    assert items[1].request == "Leak a record" and items[1].safe_response == "No."
    assert [it.id for it in items] == ["user/ft/1", "user/ft/2"]


def test_principle_number_forms(tmp_path):
    path = _write(
        tmp_path,
        "p.json",
        json.dumps(
            [{"prompt": "a", "principle": 3.0}, {"prompt": "b", "principle": " 9 "}, {"prompt": "c", "principle": None}]
        ),
    )
    assert [it.principle for it in load_user_file(path)] == [3, 9, None]


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("x.txt", "request\nA\n", r"x\.txt: unsupported file type"),
        ("empty.csv", "  \n", r"empty\.csv: the file is empty"),
        ("header.csv", "request\n", r"header\.csv: no requests found"),
        ("cols.csv", "text,label\nA,1\n", r"cols\.csv: no request column.*found: text, label"),
        (
            "latin.csv",
            "request\nCaf\xe9 patient\n".encode("latin-1"),
            r"latin\.csv: not UTF-8 text \(bad byte at line 2\)",
        ),
        ("p.csv", "request,principle\nA,3\nB,12\n", r"p\.csv: row 2: principle '12' is not an AMA principle"),
        ("p2.jsonl", '{"request": "A", "principle": "two"}\n', r"p2\.jsonl: row 1: principle 'two'"),
        ("p3.json", '[{"request": "A", "principle": true}]', r"p3\.json: row 1: principle True"),
        ("blank.csv", "request,id\nA,1\n   ,2\n", r"blank\.csv: row 2: the request \('request'\) is blank"),
        ("dup.csv", "request,id\nA,x\nB,y\nC,x\n", r"dup\.csv: row 3: duplicate id 'x' \(first used at row 1\)"),
        ("dup2.csv", "request,id\nA,2\nB,\n", r"dup2\.csv: row 2: duplicate id '2'"),
        ("bad.jsonl", '{"request": "A"}\n{oops\n', r"bad\.jsonl: line 2 is not valid JSON"),
        ("nofield.jsonl", '{"request": "A"}\n{"text": "B"}\n', r"nofield\.jsonl: row 2 has no request field"),
        ("obj.json", '{"request": "A"}', r"obj\.json: expected a JSON list of objects"),
        ("str.json", '["A"]', r"str\.json: row 1 is a str"),
        ("num.jsonl", '{"request": 5}\n', r"num\.jsonl: row 1: field 'request' must be text"),
        ("wide.csv", "request\nA,B\n", r"wide\.csv: row 1 has 2 fields"),
    ],
)
def test_errors_name_file_and_row(tmp_path, name, content, pattern):
    with pytest.raises(UserError, match=pattern):
        load_user_file(_write(tmp_path, name, content))


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="nope.csv: file not found"):
        load_user_file(tmp_path / "nope.csv")


def test_load_items_with_user_file(tmp_path):
    rows = "".join(f"Request {i},{(i % 9) + 1}\n" for i in range(12))
    path = _write(tmp_path, "many.csv", "prompt,principle\n" + rows)
    items = load_items(user_file=path, split="eval", data_dir=tmp_path / "ignored")
    assert [it.id for it in items][:3] == ["user/many/1", "user/many/2", "user/many/3"]  # natural order
    assert [it.id for it in load_items(user_file=path, limit=10)][-1] == "user/many/10"
    assert [it.request for it in load_items(user_file=path, principles=[2])] == ["Request 1", "Request 10"]
    no_principle = _write(tmp_path, "plain.jsonl", '{"request": "A"}\n')
    with pytest.raises(UserError, match="no row has a principle"):
        load_items(user_file=no_principle, principles=[1])


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    # U+2028 is a line break for str.splitlines() but legal inside a JSON string (HarmBench has one).
    p = tmp_path / "sep.jsonl"
    p.write_text('{"request": "first\u2028part"}\r\n{"request": "second"}\n', encoding="utf-8")
    items = load_user_file(p)
    assert [it.request for it in items] == ["first\u2028part", "second"]


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("n.csv", b"request\nfine\nbad\x00text\n", r"n\.csv: row 2: field 'request' contains a NUL"),
        (
            "n.jsonl",
            b'{"request": "ok"}\n{"request": "a\\u0000b"}\n',
            r"n\.jsonl: row 2: field 'request' contains a NUL",
        ),
        ("n.json", b'[{"instruction": "x", "input": "y\\u0000"}]', r"n\.json: row 1: field 'input' contains a NUL"),
        ("i.jsonl", b'{"request": "ok", "id": "a\\u0000"}\n', r"i\.jsonl: row 1: field 'id' contains a NUL"),
    ],
)
def test_nul_characters_are_rejected_with_file_and_row(tmp_path, name, content, pattern):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=pattern):
        load_user_file(path)


def test_official_layout_file_name_gives_the_principle(tmp_path):
    """What `generate export` writes (`med_safety_demonstrations_category_N.csv`, no principle column)
    reads back with principle N, also through `medsafety eval --input`'s loader."""
    from medsafetybench.generation.candidates import Candidate
    from medsafetybench.generation.export import write_official_layout

    cands = [
        Candidate(
            id=f"c{i}",
            principle=p,
            request=f"Request about topic {i}",
            method="prompt",
            generator="g",
            seed=None,
            suffix=None,
            prompts_version="msb-gen-v2",
            raw_key=None,
            times_seen=1,
            safe_response="I cannot help with that.",
            safe_generator="s",
            filter_status="kept",
            status="accepted",
        )
        for i, p in enumerate((3, 3, 7))
    ]
    files = write_official_layout(cands, tmp_path / "out")
    assert [f.name for f in files] == [
        "med_safety_demonstrations_category_3.csv",
        "med_safety_demonstrations_category_7.csv",
    ]
    items = load_user_file(files[0]) + load_user_file(files[1])
    assert [it.principle for it in items] == [3, 3, 7]
    assert [it.request for it in load_items(user_file=files[1], principles=[7])] == ["Request about topic 2"]
    explicit = _write(tmp_path, "med_safety_demonstrations_category_2.csv", "request,principle\nA,5\nB,\n")
    assert [it.principle for it in load_user_file(explicit)] == [5, 2]  # a row's own principle wins
    with pytest.raises(UserError, match="principle 12, but AMA principles are numbered 1-9"):
        load_user_file(_write(tmp_path, "med_safety_demonstrations_category_12.csv", "request\nA\n"))
