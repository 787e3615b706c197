"""The SQLite run store: WAL, content keys, idempotent writes, clear errors."""

from pathlib import Path

import pytest

from medsafetybench.errors import UserError
from medsafetybench.judging.base import JudgeCase, Judgement
from medsafetybench.models.base import ChatRequest, Completion, Usage
from medsafetybench.store import Store


def _items(n, model_identity="m1"):
    out = []
    for i in range(n):
        req = ChatRequest.simple(f"request {i}", system="sys")
        out.append(
            {
                "id": f"sample/p1/{i}",
                "split": "sample",
                "source": "sample",
                "principle": 1,
                "request": f"request {i}",
                "safe_response": None,
                "policy": "medical",
                "response_key": req.cache_key(model_identity),
            }
        )
    return out


def test_wal_and_schema(tmp_path):
    with Store(tmp_path / "p" / "medsafety.db") as s:
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Re-opening an existing store works.
    Store(tmp_path / "p" / "medsafety.db").close()


def test_run_roundtrip_and_idempotence(tmp_path):
    with Store(tmp_path / "medsafety.db") as s:
        items = _items(3)
        assert s.create_run(
            "abc123", model_spec="hf:x", model_identity="m1", judge_identity="j1", settings={"k": 1}, items=items
        )
        assert not s.create_run(
            "abc123", model_spec="hf:x", model_identity="m1", judge_identity="j1", settings={"k": 1}, items=items
        )
        assert s.run("abc").id == "abc123"
        rows = s.run_rows("abc123")
        assert [r.item_id for r in rows] == [it["id"] for it in items]
        assert all(r.response is None and not r.judged for r in rows)

        req = ChatRequest.simple("request 0", system="sys")
        assert s.missing_responses([items[0]["response_key"]]) == {items[0]["response_key"]}
        assert s.put_response(items[0]["response_key"], "m1", req, Completion("hi", Usage(3, 1)))
        assert not s.put_response(items[0]["response_key"], "m1", req, Completion("again", Usage(3, 1)))
        assert s.response_text(items[0]["response_key"]) == "hi"
        assert s.missing_responses([items[0]["response_key"]]) == set()

        jkey = JudgeCase("request 0", "hi").cache_key("j1")
        assert s.put_judgement(jkey, "j1", Judgement(2, "because", "#score: 2"))
        assert not s.put_judgement(jkey, "j1", Judgement(5, "other", "#score: 5"))
        row = s.run_rows("abc123")[0]
        assert (row.response, row.score, row.judged, row.reason, row.prompt_tokens) == ("hi", 2, True, "because", 3)
        assert s.conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 1
        assert s.conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == 1


def test_unscored_judgements_kept_and_can_be_forgotten(tmp_path):
    with Store(tmp_path / "medsafety.db") as s:
        k = JudgeCase("r", "x").cache_key("j")
        s.put_judgement(k, "j", Judgement(None, "no score found", "garbled"))
        assert s.conn.execute("SELECT score, raw FROM judgements").fetchone() == (None, "garbled")
        assert s.delete_unscored([k]) == 1
        assert s.has_judgements([k]) == set()


def test_failed_results_are_not_stored(tmp_path):
    with Store(tmp_path / "medsafety.db") as s:
        with pytest.raises(ValueError):
            s.put_response("k", "m", ChatRequest.simple("x"), Completion("", error="boom"))
        with pytest.raises(ValueError):
            s.put_judgement("k", "j", Judgement(None, error="unreachable"))


def test_score_range_enforced(tmp_path):
    with Store(tmp_path / "medsafety.db") as s:
        with pytest.raises(ValueError, match="not 1-5"):
            s.put_judgement("k", "j", Judgement(7, "", ""))


def test_unknown_and_ambiguous_runs(tmp_path):
    with Store(tmp_path / "medsafety.db") as s:
        for rid in ("aa11", "aa22"):
            s.create_run(rid, model_spec="m", model_identity="m", judge_identity="j", settings={}, items=[])
        with pytest.raises(UserError, match="ambiguous"):
            s.run("aa")
        with pytest.raises(UserError, match="no run 'zz'"):
            s.run("zz")
        assert len(s.runs()) == 2


def test_not_a_database_gives_clear_error(tmp_path):
    bad = tmp_path / "medsafety.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(UserError, match="cannot open the run store"):
        Store(bad)


def test_a_store_from_a_newer_release_is_refused(tmp_path):
    with Store(tmp_path / "medsafety.db") as s:
        s.conn.execute("UPDATE meta SET value='99' WHERE key='version:core'")
    with pytest.raises(UserError, match="newer medsafetybench .*core 99"):
        Store(tmp_path / "medsafety.db")


def test_project_dir_default_env_and_explicit(tmp_path, monkeypatch):
    from medsafetybench.store import project_db_path, project_dir

    monkeypatch.delenv("MEDSAFETY_PROJECT", raising=False)
    assert project_dir() == Path("medsafety-runs")
    monkeypatch.setenv("MEDSAFETY_PROJECT", str(tmp_path / "env"))
    assert project_db_path() == tmp_path / "env" / "medsafety.db"
    assert project_dir(tmp_path / "given") == tmp_path / "given"


def test_nested_transactions_join_the_outer_one_and_replace(tmp_path):
    with Store(tmp_path / "medsafety.db") as s:
        s.create_run("r1", model_spec="hf:x", model_identity="m1", settings={}, items=_items(1))
        key = JudgeCase("q", "a").cache_key("human:ann")
        with pytest.raises(RuntimeError):
            with s.transaction():
                s.add_run_judge("r1", "j1")  # its own transaction() joins this one
                s.put_judgement(key, "human:ann", Judgement(2))
                raise RuntimeError("a later row was bad")
        assert s.run_judges("r1") == [] and s.judgements([key]) == {}  # all rolled back
        assert s.put_judgement(key, "human:ann", Judgement(2))
        assert not s.put_judgement(key, "human:ann", Judgement(4))  # kept: first write wins by default
        assert s.judgements([key])[key].score == 2
        assert s.put_judgement(key, "human:ann", Judgement(4), replace=True)  # a person changed their mind
        assert s.judgements([key])[key].score == 4
