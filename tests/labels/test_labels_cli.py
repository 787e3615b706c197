"""`medsafety label` as a user runs it (in-process): export a sample, fill it in, import it; `show`,
`compare` and the report then give agreement and judge-corrected scores. Bad input: one line, exit 2,
nothing written."""

from __future__ import annotations

import csv
import json
import socket

import pytest

from helpers.cli import run_main
from helpers.fixtures_report import build_store
from medsafetybench.store import Store

# model-a's judge scores by item (None: unscored); the labeller is one point lower on 4s and 5s
HUMAN_A = {0: 1, 1: 1, 2: 2, 3: 4, 4: 3, 5: 1, 6: 3, 7: 1, 8: 2, 9: 4, 10: 1, 11: 2}


@pytest.fixture
def project(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    store.close()
    return tmp_path / "proj", a, b


def _fill(path, scores: dict[int, int]) -> None:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["score"] = str(scores[int(r["item_id"].split("/")[1])])
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_export_import_show_compare_report(project, tmp_path, capsys):
    proj, a, b = project
    sheet = tmp_path / "sheet.csv"
    # options before the run work too: `label --sample N RUN` is `label page --sample N RUN`
    assert (
        run_main("label", "--sample", "12", a[:8], "--seed", "2", "--export", str(sheet), "--project", str(proj)) == 0
    )
    assert "fill in the score column" in capsys.readouterr().out
    with open(sheet, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and set(rows[0]) == {
        "item_id",
        "principle",
        "source",
        "request",
        "response",
        "score",
        "reason",
    }
    _fill(sheet, HUMAN_A)
    assert (
        run_main("label", "import", str(sheet), "--run", a, "--labeller", "ann", "--project", str(proj), "--json") == 0
    )
    assert json.loads(capsys.readouterr().out) == {
        "run_id": a,
        "labeller": "human:ann",
        "imported": 12,
        "blank": 0,
        "outside_samples": 0,
    }
    assert run_main("show", a, "--project", str(proj), "--json") == 0
    [cal] = json.loads(capsys.readouterr().out)["calibration"]
    assert cal["labeller"] == "human:ann" and cal["n_labelled"] == 11 and cal["sample"]["seed"] == 2
    assert cal["corrected_harmfulness"]["value"] == pytest.approx(23 / 11)
    assert cal["raw_harmfulness"]["value"] == pytest.approx(26 / 11)
    assert cal["agreement"]["exact"] == pytest.approx(8 / 11)
    assert run_main("show", a[:8], "--project", str(proj)) == 0
    text = capsys.readouterr().out
    assert "Human labels" in text and "human:ann" in text and "2.09 [" in text and "11/12" in text
    # compare: both runs' blocks and the corrected difference once B is labelled too
    sheet_b = tmp_path / "b.csv"
    assert run_main("label", b, "--sample", "6", "--export", str(sheet_b), "--project", str(proj)) == 0
    _fill(sheet_b, dict.fromkeys(range(12), 1))
    assert run_main("label", "import", str(sheet_b), "--run", b, "--labeller", "ann", "--project", str(proj)) == 0
    capsys.readouterr()
    assert run_main("compare", a, b, "--project", str(proj), "--json") == 0
    d = json.loads(capsys.readouterr().out)["calibration"]
    assert len(d["a"]) == len(d["b"]) == 1 and d["corrected_difference"]["value"] < 0
    assert run_main("compare", a, b, "--project", str(proj)) == 0
    assert "judge-corrected harmfulness B - A" in capsys.readouterr().out
    out = tmp_path / "r.html"
    assert run_main("report", "--project", str(proj), "--out", str(out), "--markdown", str(tmp_path / "r.md")) == 0
    html = out.read_text()
    assert "Human labels and calibrated scores" in html and "human:ann" in html
    assert "Human labels and calibrated scores" in (tmp_path / "r.md").read_text()


def test_import_reports_labels_outside_samples(project, tmp_path, capsys):
    proj, a, _ = project
    f = tmp_path / "l.jsonl"
    f.write_text('{"item_id": "test/00", "score": 2}\n{"item_id": "test/01", "score": ""}\n')
    assert run_main("label", "import", str(f), "--run", a, "--labeller", "bob", "--project", str(proj)) == 0
    captured = capsys.readouterr()
    assert "imported 1 label(s) by human:bob" in captured.out and "1 blank row(s) skipped" in captured.out
    assert "in no sample drawn from this run" in captured.err
    assert run_main("show", a, "--project", str(proj), "--json") == 0
    [cal] = json.loads(capsys.readouterr().out)["calibration"]
    assert cal["sample"] is None and cal["corrected_harmfulness"]["value"] is None and cal["notes"]


@pytest.mark.parametrize(
    ("args", "text", "message"),
    [
        (
            ["label", "import", "{f}", "--run", "{a}", "--labeller", "ann"],
            "item_id,score\ntest/00,2\ntest/01,9\n",
            "row 2: score '9' is not a whole number 1-5",
        ),
        (
            ["label", "import", "{f}", "--run", "{a}", "--labeller", "ann"],
            "item_id,score\ntest/00,2\ntest/99,3\n",
            "row 2: item 'test/99' is not in run",
        ),
        (["label", "import", "{f}", "--run", "{a}", "--labeller", "a b"], "item_id,score\ntest/00,2\n", "--labeller"),
        (
            ["label", "import", "{f}", "--run", "nope", "--labeller", "ann"],
            "item_id,score\ntest/00,2\n",
            "no run 'nope'",
        ),
        (["label", "{a}", "--sample", "3", "--port", "{busy}"], "", "cannot listen on 127.0.0.1"),
        (["label", "{a}", "--sample", "3", "--labeller", "x/y"], "", "--labeller"),
    ],
)
def test_user_errors_write_nothing(project, tmp_path, capsys, args, text, message):
    proj, a, _ = project
    f = tmp_path / "labels.csv"
    f.write_text(text)
    before = _counts(proj)
    with socket.socket() as busy:  # a port already taken
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code = run_main(*[x.format(f=f, a=a, busy=busy.getsockname()[1]) for x in args], "--project", str(proj))
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    after = _counts(proj)
    assert after[0] == before[0] and after[1] == before[1]  # no judgement, no judge attached


def test_unjudged_run_is_refused(project, capsys):
    proj, a, _ = project
    with Store.open_project(proj) as store:
        store.conn.execute("DELETE FROM run_judges WHERE run_id=?", (a,))
    assert run_main("label", a, "--sample", "3", "--project", str(proj)) == 2
    assert "has no judge yet" in capsys.readouterr().err


def _counts(proj) -> tuple[int, int, int]:
    with Store.open_project(proj) as store:
        return tuple(
            store.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
            for t in ("judgements", "run_judges", "label_samples")
        )
