"""`medsafety rejudge` as a user runs it (in-process): two runs made against the fake OpenAI server over HTTP,
the server stopped, then two offline judges added from the stored responses alone. The judges join the runs,
`show`, `compare`, the report and `label --show-disagreements` give the jury, re-running judges nothing again,
and bad input is one line that writes nothing."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers.cli import run_main
from medsafetybench.labels.jury import krippendorff_alpha
from medsafetybench.labels.sample import draw_sample
from medsafetybench.store import Store
from medsafetybench.testing.fake_openai import FakeOpenAIServer
from medsafetybench.testing.responders import default_responder

PRIMARY = "offline-v3"


@pytest.fixture(scope="module")
def extra():
    """The judges added after the fact: the other offline judge and the paper's LLM judge on a fake judge
    server (the model's server is gone by then; a judge's own server may well be up)."""
    from medsafetybench.testing.responders import rubric_responder

    with FakeOpenAIServer(rubric_responder) as judge_srv:
        yield ("offline-v1", f"openai:j@{judge_srv.base_url}")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A project with two finished runs (judged by one judge) whose model server is gone."""
    root = tmp_path_factory.mktemp("rejudge")
    project = root / "proj"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OPENAI_API_KEY", raising=False)
        mp.delenv("OPENAI_BASE_URL", raising=False)
        with FakeOpenAIServer(default_responder) as srv, FakeOpenAIServer(lambda r: "I cannot help with that.") as srv2:
            for name, url in (("mixed", srv.base_url), ("refuser", srv2.base_url)):
                assert (
                    run_main(
                        "eval",
                        "--model",
                        f"openai:m@{url}",
                        "--name",
                        name,
                        "--judge",
                        PRIMARY,
                        "--split",
                        "sample",
                        "--project",
                        str(project),
                        "--json",
                    )
                    == 0
                )
            calls = srv.stats().total_calls
        assert calls == 25
    with Store.open_project(project) as store:
        ids = {r.name: r.id for r in store.runs()}
    return project, ids


@pytest.fixture(scope="module")
def rejudged(finished, extra, tmp_path_factory):
    """The project after `rejudge` of both runs, and the first rejudge's JSON output per run."""
    project, ids = finished
    work = tmp_path_factory.mktemp("rejudged") / "proj"
    shutil.copytree(project, work)
    outputs = {}
    for name, run_id in ids.items():
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = run_main(
                "rejudge", run_id, *(x for j in extra for x in ("--judge", j)), "--project", str(work), "--json"
            )
        assert rc == 0
        outputs[name] = json.loads(buf.getvalue())
    return work, ids, outputs


def test_rejudge_adds_the_judges_without_the_model(rejudged, extra):
    work, ids, outputs = rejudged
    first = outputs["mixed"]
    assert first["responses"] == 25 and len(first["judges"]) == 2
    assert all(r["calls"] == 25 and r["stored"] == 25 and r["failed"] == 0 for r in first["judges"].values())
    with Store.open_project(work) as store:
        info = store.run(ids["mixed"])
        assert len(info.judges) == 3 and info.judges[0].startswith("offline:")  # the primary stays first
        assert set(info.judges[1:]) == set(first["judges"])
        specs = [s.spec for _, s in store.run_judges(info.id)]
        assert specs == [PRIMARY, *extra]  # stored specs rebuild each judge
        rows = {j: store.run_rows(info.id, j) for j in info.judges}
    assert all(r.judged for rs in rows.values() for r in rs)
    # the jury in the output is the one recomputed from the store
    jury = first["jury"]
    assert jury["judges"] == list(info.judges) and jury["n_items"] == 25
    expected = krippendorff_alpha([[r.score for r in rows[j]] for j in info.judges], "ordinal")
    assert jury["alpha"] == pytest.approx(expected)


def test_rejudge_again_makes_no_new_judgements(rejudged, extra, capsys):
    work, ids, _ = rejudged
    assert (
        run_main("rejudge", ids["mixed"], "--judge", extra[0], "--judge", extra[1], "--project", str(work), "--json")
        == 0
    )
    again = json.loads(capsys.readouterr().out)
    assert all(r["calls"] == 0 and r["stored"] == 0 for r in again["judges"].values())
    with Store.open_project(work) as store:
        assert len(store.run(ids["mixed"]).judges) == 3


def test_show_gives_the_jury_and_its_agreement(rejudged, capsys, monkeypatch):
    work, ids, outputs = rejudged
    monkeypatch.setenv("COLUMNS", "80")
    assert run_main("show", ids["mixed"], "--project", str(work)) == 0
    text = capsys.readouterr().out
    assert "Jury" in text and "Krippendorff, ordinal" in text and "Cohen's, harmful verdicts" in text
    assert "tie -> harmful" in text and "J3" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    n = len(outputs["mixed"]["jury"]["disagreements"])
    assert f"{n} of 25 items" in text
    assert run_main("show", ids["mixed"], "--project", str(work), "--json") == 0
    shown = json.loads(capsys.readouterr().out)["jury"]
    assert shown["alpha"] == outputs["mixed"]["jury"]["alpha"] and shown["tie_rule"] == "harmful"
    # one judge asked for: no jury
    assert run_main("show", ids["mixed"], "--project", str(work), "--judge", shown["judges"][0], "--json") == 0
    assert json.loads(capsys.readouterr().out)["jury"] is None


def test_compare_report_and_label_show_the_juries(rejudged, tmp_path, capsys, monkeypatch):
    work, ids, outputs = rejudged
    monkeypatch.setenv("COLUMNS", "80")
    assert run_main("compare", ids["refuser"], ids["mixed"], "--project", str(work)) == 0
    text = capsys.readouterr().out
    assert "Juries" in text and "Jury score (mean of the 1-5 judges), B - A" in text
    assert run_main("compare", ids["refuser"], ids["mixed"], "--project", str(work), "--json") == 0
    cmp = json.loads(capsys.readouterr().out)["jury"]
    assert cmp["same_judges"] and cmp["difference"]["n"] == 25
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    assert run_main("report", "--project", str(work), "--out", str(html), "--markdown", str(md)) == 0
    page = html.read_text(encoding="utf-8")
    assert "Juries: several judges on the same responses" in page and "alpha (ordinal)" in page
    assert "Juries" in md.read_text(encoding="utf-8")
    assert run_main("label", ids["mixed"], "--show-disagreements", "--project", str(work)) == 0
    text = capsys.readouterr().out
    for d in outputs["mixed"]["jury"]["disagreements"]:
        assert d["item_id"] in text
    assert "does not depend on them" in text


def test_the_label_sample_does_not_depend_on_the_jury(finished, rejudged):
    project, ids = finished
    work, _, outputs = rejudged
    assert outputs["mixed"]["jury"]["disagreements"]  # the rejudged run has disagreements to be drawn to
    with Store(project / "medsafety.db") as one, Store(work / "medsafety.db") as jury:
        for n, seed in ((5, 0), (10, 3)):
            assert draw_sample(one, ids["mixed"], n, seed).item_ids == draw_sample(jury, ids["mixed"], n, seed).item_ids


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--judge", "offline-v1", "--judge", "nosuch"), "unknown judge 'nosuch'"),
        (("--judge", "offline-v1", "--judge", "offline-v1"), "the same --judge is given twice"),
    ],
)
def test_bad_judges_are_one_line_and_write_nothing(finished, tmp_path, capsys, args, message):
    project, ids = finished
    work = tmp_path / "proj"
    shutil.copytree(project, work)
    assert run_main("rejudge", ids["mixed"], *args, "--project", str(work)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    with Store.open_project(work) as store:
        assert len(store.run(ids["mixed"]).judges) == 1
    missing = tmp_path / "nowhere"
    assert run_main("rejudge", "abc", "--judge", "offline-v1", "--project", str(missing)) == 2
    assert "no run store" in capsys.readouterr().err and not missing.exists()
    assert run_main("rejudge", "nosuchrun", "--judge", "offline-v1", "--project", str(work)) == 2
    assert "no run 'nosuchrun'" in capsys.readouterr().err
    assert run_main("label", ids["mixed"], "--show-disagreements", "--project", str(work)) == 2
    assert "has one judge" in capsys.readouterr().err
