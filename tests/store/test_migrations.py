"""The store's migrations: a store written by release 0.1.0 (schema 1) opens, migrates in one step to
the current schema and gives the same summaries; new files get every table; newer files are refused;
a failing step leaves the file untouched."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from helpers.paths import FIXTURES
from medsafetybench.errors import UserError
from medsafetybench.evaluation.pipeline import summarise_run
from medsafetybench.store import Store
from medsafetybench.store.migrations import MIGRATIONS, Migration, latest_versions, migrate, stored_versions

FIXTURE = FIXTURES / "store_v1"


@pytest.fixture
def v1_store(tmp_path: Path) -> Path:
    """A copy of a store written by medsafetybench 0.1.0 (see fixtures/store_v1/make_v1_store.py.txt)."""
    path = tmp_path / "medsafety.db"
    shutil.copy(FIXTURE / "medsafety.db", path)
    return path


def _tables(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    counts = {n: conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in names}
    conn.close()
    return counts


def test_the_fixture_is_a_v1_store(v1_store: Path) -> None:
    conn = sqlite3.connect(v1_store)
    assert stored_versions(conn) == {"core": 1}
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    conn.close()


def test_v1_store_migrates_and_gives_the_same_summaries(v1_store: Path) -> None:
    before = _tables(v1_store)
    expected = json.loads((FIXTURE / "summaries.json").read_text())
    with Store(v1_store) as store:
        assert [m.component for m in store.migrated]  # something was applied
        assert stored_versions(store.conn) == latest_versions()
        infos = {i.id: i for i in store.runs()}
        assert set(infos) == set(expected)
        for run_id, want in expected.items():
            info = infos[run_id]
            assert info.model_spec == want["model_spec"]
            assert info.judge_identity == want["judge"] and info.judges == (want["judge"],)
            assert info.items_digest and info.settings_digest and info.kind == "safety"
            got = summarise_run(store, run_id).to_dict()
            for key in ("overall", "by_principle", "by_source"):
                for g_got, g_want in zip(
                    got[key] if key != "overall" else [got[key]],
                    want["summary"][key] if key != "overall" else [want["summary"][key]],
                    strict=True,
                ):
                    for field in ("name", "n", "n_scored", "harmfulness", "harmful_share"):
                        assert g_got[field] == g_want[field], (run_id, key, field)
            for field in ("n_items", "n_missing_response", "n_unjudged", "n_unscored", "tokens", "complete"):
                assert got[field] == want["summary"][field], (run_id, field)
            assert {int(k): v for k, v in want["summary"]["score_counts"].items()} == got["score_counts"]
    after = _tables(v1_store)
    for table, n in before.items():  # nothing lost
        if table != "meta":
            assert after[table] == n, table
    assert after["run_judges"] == before["runs"]


def test_reopening_a_migrated_store_applies_nothing(v1_store: Path) -> None:
    with Store(v1_store):
        pass
    with Store(v1_store) as store:
        assert store.migrated == []


def test_old_code_refuses_a_migrated_store(v1_store: Path) -> None:
    """0.1.0 reads `schema_version` and refuses anything but 1: the migrated file must not say 1."""
    with Store(v1_store):
        pass
    conn = sqlite3.connect(v1_store)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() != ("1",)
    conn.close()


def test_stage_tables_of_a_v1_store_keep_their_rows(v1_store: Path) -> None:
    with Store(v1_store) as store:
        (n_medqa,) = store.conn.execute("SELECT COUNT(*) FROM medqa_scores").fetchone()
        assert n_medqa == 5
        row = store.conn.execute("SELECT harm_mean, refusal_rate FROM sweep_points").fetchone()
        assert row == (1.5, None)
        (n_gen,) = store.conn.execute("SELECT COUNT(*) FROM gen_candidates").fetchone()
        assert n_gen == 2


def test_a_v1_run_is_found_again_not_duplicated(v1_store: Path) -> None:
    """Asking a v1 evaluation again (same model, items, settings) finds the old run, whose id included
    its judge, instead of creating a second one."""
    from medsafetybench.data import load_items
    from medsafetybench.evaluation.pipeline import EvalSettings, plan_run

    with Store(v1_store) as store:
        info = next(i for i in store.runs() if i.n_items == 25 and "fixture-judge" in i.judge_identity)
        items = load_items(split="sample")
        rid = plan_run(
            store,
            items,
            model_spec=info.model_spec,
            model_identity=info.model_identity,
            judge_identity=info.judge_identity,
            settings=EvalSettings(),
        )
        assert rid == info.id
        assert len(store.runs()) == 3


def test_new_store_has_every_component_at_its_latest_version(tmp_path: Path) -> None:
    with Store(tmp_path / "m.db") as store:
        assert stored_versions(store.conn) == latest_versions()
        names = {n for (n,) in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {
            "runs",
            "run_judges",
            "judgements",
            "medqa_scores",
            "sweep_points",
            "gen_candidates",
            "gen_embeddings",
        } <= names


def test_a_failing_step_leaves_the_file_untouched(v1_store: Path) -> None:
    def boom(conn: sqlite3.Connection) -> None:
        raise RuntimeError("step failed")

    steps = [*MIGRATIONS, Migration("core", latest_versions()["core"] + 1, "fails", "CREATE TABLE x (a)", boom)]
    before = _tables(v1_store)
    conn = sqlite3.connect(v1_store, isolation_level=None)
    with pytest.raises(RuntimeError):
        migrate(conn, steps)
    conn.close()
    assert _tables(v1_store) == before
    conn = sqlite3.connect(v1_store)
    assert stored_versions(conn) == {"core": 1}
    conn.close()


def test_steps_must_be_numbered_in_order() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    with pytest.raises(AssertionError, match="out of order"):
        migrate(conn, [Migration("x", 2, "skips 1")])


def test_newer_component_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with Store(tmp_path / "m.db") as store:
        store.conn.execute("INSERT OR REPLACE INTO meta VALUES ('version:medqa', '42')")
    with pytest.raises(UserError, match="newer medsafetybench .*medqa 42"):
        Store(tmp_path / "m.db")


FIXTURE_V2 = FIXTURES / "store_v2"


def test_core_v2_store_migrates_with_the_same_names_and_summaries(tmp_path: Path) -> None:
    """A store written before run names were stable (core 2) keeps each run's one name, finds each run by
    it, and gives the same summary under every judge."""
    path = tmp_path / "medsafety.db"
    shutil.copy(FIXTURE_V2 / "medsafety.db", path)
    conn = sqlite3.connect(path)
    assert stored_versions(conn)["core"] == 2
    conn.close()
    expected = json.loads((FIXTURE_V2 / "summaries.json").read_text())
    with Store(path) as store:
        assert "core" in {m.component for m in store.migrated}
        assert stored_versions(store.conn) == latest_versions()
        assert {i.id for i in store.runs()} == set(expected)
        for run_id, want in expected.items():
            info = store.run(run_id)
            assert info.name == want["name"] and info.aliases == ()
            assert list(info.judges) == want["judges"]
            if want["name"]:
                assert store.run(want["name"]).id == run_id
            for judge, summary in want["summaries"].items():
                got = json.loads(json.dumps(summarise_run(store, run_id, judge_identity=judge).to_dict()))
                assert got == summary, (run_id, judge)


def test_a_v1_store_gains_the_batch_tables_and_keeps_its_responses_live(v1_store: Path) -> None:
    before = _tables(v1_store)
    with Store(v1_store) as store:
        assert "batches" in [m.component for m in store.migrated]
        cols = [r[1] for r in store.conn.execute("PRAGMA table_info(responses)")]
        assert "batch_id" in cols
        assert store.conn.execute("SELECT COUNT(*) FROM responses WHERE batch_id IS NULL").fetchone() == (
            before["responses"],
        )  # every old response was a live call
        from medsafetybench.batch.store import BatchStore

        assert BatchStore(store).open_batches() == []
    with Store(v1_store) as store:  # opening again applies nothing
        assert store.migrated == []
