"""GCG runs in the store: a run is reused whatever the batch size, an interrupted run resumes from its
checkpoint and ends as an uninterrupted one, runs are listed, both versions turn a run into candidates,
and runs stored by 0.1.0 migrate to the new meaning of `success`."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from helpers.paths import FIXTURES
from medsafetybench.generation import prompts
from medsafetybench.generation.candidates import CandidateStore
from medsafetybench.generation.gcg import GCG, GCGConfig
from medsafetybench.generation.gcg_runs import generate_by_gcg, list_runs, optimise
from medsafetybench.models import load_model
from medsafetybench.store import Store

torch = pytest.importorskip("torch")
FIXTURE = FIXTURES / "store_v1" / "medsafety.db"


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(f"hf:{tiny_model_dir}")


def _cfg(version: str = prompts.V2, **kw) -> GCGConfig:
    base = dict(
        steps=4,
        top_k=32,
        num_candidates=32,
        suffix_len=10,
        batch_size=32,
        early_stop=False,
        check_every=2,
        check_tokens=8,
        seed=1,
        checkpoint_every=1,
    )
    return GCGConfig.for_version(version, **(base | kw))


@pytest.mark.parametrize("version", prompts.VERSIONS)
def test_generate_by_gcg_stores_and_reuses(tiny, tmp_path: Path, version: str) -> None:
    cfg = _cfg(version)
    with Store(tmp_path / "db.sqlite") as store:
        res, report = generate_by_gcg(store, tiny, 6, cfg, max_new_tokens=24)
        assert res.steps_run == 4 and len(res.losses) == 5 and len(res.checks) == 2
        assert report.replies == 1 and report.calls == (1 if version == prompts.V1 else 0)  # v2: the check output
        for c in CandidateStore(store).list():
            assert c.method == "gcg" and c.suffix == res.suffix and c.prompts_version == version
        again, report2 = generate_by_gcg(store, tiny, 6, replace(cfg, batch_size=5), max_new_tokens=24)
        assert again == res and report2.calls == 0  # another batch size: the same run, not optimised again
        (n,) = store.conn.execute("SELECT COUNT(*) FROM gen_gcg_runs").fetchone()
        assert n == 1 and store.conn.execute("SELECT COUNT(*) FROM gen_gcg_checkpoints").fetchone() == (0,)
        (run,) = list_runs(store)
        assert (run.status, run.principle, run.prompts_version, run.steps_run, run.steps) == ("done", 6, version, 4, 4)
        assert run.success == res.success and run.refused == res.refused and run.suffix == res.suffix


def test_interrupted_run_resumes_from_its_checkpoint(tiny, tmp_path: Path, monkeypatch) -> None:
    cfg, goal, target = _cfg(checkpoint_every=2), "Goal text", "Sure, here is"
    with Store(tmp_path / "a.sqlite") as store:
        _, straight = optimise(store, tiny, 1, goal, target, cfg)
    calls = {"n": 0}
    real = GCG.sample_candidates

    def interrupt_in_step_four(self, *args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, *args)

    with Store(tmp_path / "b.sqlite") as store:
        monkeypatch.setattr(GCG, "sample_candidates", interrupt_in_step_four)
        with pytest.raises(KeyboardInterrupt):
            optimise(store, tiny, 1, goal, target, cfg)
        monkeypatch.setattr(GCG, "sample_candidates", real)
        (run,) = list_runs(store)
        assert (run.status, run.steps_run, run.steps) == ("checkpoint", 2, 4)  # every 2 steps
        logs: list[str] = []
        _, resumed = optimise(store, tiny, 1, goal, target, cfg, log=logs.append)
        assert "from its checkpoint at step 2" in logs[0]
        assert resumed.losses == straight.losses and resumed.suffix_ids == straight.suffix_ids
        assert resumed.checks == straight.checks
        assert [r.status for r in list_runs(store)] == ["done"]


def test_runs_from_release_0_1_0_migrate(tmp_path: Path) -> None:
    """0.1.0 called an output a success when it started with the target OR had no refusal phrase."""
    db = tmp_path / "medsafety.db"
    shutil.copy(FIXTURE, db)
    conn = sqlite3.connect(db)
    for key, output in (
        ("starts", "Sure, here is a list"),
        ("plain", "1. Request about topic A"),
        ("refuses", "I'm sorry, I cannot"),
    ):
        conn.execute(
            "INSERT INTO gen_gcg_runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                key,
                "hf:tiny",
                2,
                "goal",
                "Sure, here is",
                "{}",
                "* *",
                "[1,2]",
                5.4,
                "[6.0,5.4]",
                int("sorry" not in output),
                output,
                2,
                1.0,
                1.0,
            ),
        )
    conn.commit()
    conn.close()
    with Store(db) as store:
        got = {
            r[0]: r[1:] for r in store.conn.execute("SELECT key, success, refused, prompts_version FROM gen_gcg_runs")
        }
        assert got["starts"] == (1, 0, prompts.V1)
        assert got["plain"] == (0, 0, prompts.V1)  # "success: True" at loss 5.4 no more
        assert got["refuses"] == (0, 1, prompts.V1)
        assert {r.key for r in list_runs(store) if r.status == "done"} == {"k1", "starts", "plain", "refuses"}
