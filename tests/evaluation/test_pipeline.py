"""The whole loop over real HTTP: respond -> judge -> summarise, caching, faults, unscored, kill -9."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.paths import REPO
from medsafetybench.data import load_items
from medsafetybench.evaluation.pipeline import EvalSettings, run_evaluation, run_id_for
from medsafetybench.judging import load_judge
from medsafetybench.models import load_model
from medsafetybench.store import Store
from medsafetybench.testing.fake_openai import FakeOpenAIServer, FaultPlan, prompt_key

SRC = str(REPO / "src")


def model_reply(request: dict) -> str:
    """The model under test: refuses requests on even principles' wording, complies otherwise."""
    text = request["messages"][-1]["content"]
    return "I cannot help with that; it would be unethical." if len(text) % 2 == 0 else f"Sure, here it is: {text[:40]}"


def judge_reply(request: dict) -> str:
    prompt = request["messages"][-1]["content"]
    response = prompt.split('Model Response: "', 1)[1].split('"\n\n', 1)[0]
    if "GARBLE" in response:
        return "I am not able to rate this."
    score = 1 if response.startswith("I cannot") else 5
    return f"#reason: the model {'declines' if score == 1 else 'complies'}.\n#score: {score}"


@pytest.fixture
def servers():
    with FakeOpenAIServer(model_reply) as model_srv, FakeOpenAIServer(judge_reply) as judge_srv:
        yield model_srv, judge_srv


def _run(store, items, model_srv, judge_srv, **kw):
    model = load_model(f"openai:tiny@{model_srv.base_url}", concurrency=8, timeout=5, **kw)
    judge = load_judge(f"openai:judge@{judge_srv.base_url}", concurrency=8, timeout=5)
    return run_evaluation(store, items, model, judge, model_spec=f"openai:tiny@{model_srv.base_url}")


def test_end_to_end_and_rerun_makes_no_calls(tmp_path, servers):
    model_srv, judge_srv = servers
    items = load_items(split="sample")
    with Store.open_project(tmp_path) as store:
        first = _run(store, items, model_srv, judge_srv)
        assert first.responses.calls == len(items) and first.judgements.calls == len(items)
        s = first.summary
        assert s.complete and s.n_items == len(items) and s.n_unscored == 0
        expected = [1 if len(it.request) % 2 == 0 else 5 for it in items]
        assert s.overall.harmfulness.value == pytest.approx(sum(expected) / len(expected))
        assert len(s.by_principle) == 9
        assert sum(g.n for g in s.by_principle) == len(items)
        assert s.tokens["response_completion"] > 0 and s.tokens["judge_prompt"] > 0
        rows = store.run_rows(first.run_id)
        assert [r.score for r in rows] == expected
        calls = (model_srv.stats().total_calls, judge_srv.stats().total_calls)

        second = _run(store, items, model_srv, judge_srv)
        assert second.run_id == first.run_id
        assert (second.responses.calls, second.judgements.calls) == (0, 0)
        assert (model_srv.stats().total_calls, judge_srv.stats().total_calls) == calls
        assert second.summary.to_dict() == s.to_dict()
        assert len(store.runs()) == 1


def test_changed_settings_is_a_new_run_but_judgements_are_reused(tmp_path, servers):
    model_srv, judge_srv = servers
    items = load_items(split="sample")[:4]
    with Store.open_project(tmp_path) as store:
        a = _run(store, items, model_srv, judge_srv)
        model = load_model(f"openai:tiny@{model_srv.base_url}")
        judge = load_judge(f"openai:judge@{judge_srv.base_url}")
        b = run_evaluation(store, items, model, judge, model_spec="x", settings=EvalSettings(system_prompt=None))
        assert a.run_id != b.run_id
        assert b.responses.calls == 4  # different prompt: new responses
        assert b.judgements.calls == 0  # same (request, response) pairs: judgements reused


def test_thirty_percent_faults_every_item_exactly_once(tmp_path):
    items = load_items(split="sample")
    faults = FaultPlan.mixed(0.3, seed=7, retry_after=(0.01, 0.05), slow_seconds=1.5)
    with (
        FakeOpenAIServer(model_reply, faults=faults) as model_srv,
        FakeOpenAIServer(
            judge_reply, faults=FaultPlan.mixed(0.3, seed=8, retry_after=(0.01, 0.05), slow_seconds=1.5)
        ) as judge_srv,
    ):
        with Store.open_project(tmp_path) as store:
            model = load_model(
                f"openai:tiny@{model_srv.base_url}", concurrency=8, timeout=1.0, max_retries=12, backoff_base=0.01
            )
            judge = load_judge(
                f"openai:judge@{judge_srv.base_url}", concurrency=8, timeout=1.0, max_retries=12, backoff_base=0.01
            )
            out = run_evaluation(store, items, model, judge, model_spec="faulty")
            assert out.responses.failed == 0 and out.judgements.failed == 0
            assert out.summary.complete
            n = store.conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            assert n == len(items)
            assert store.conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == len(items)
        ms = model_srv.stats()
        assert sum(ms.by_outcome[k] for k in ms.by_outcome if k != "ok") > 0  # faults really happened
        assert len(ms.successes) == len(items) and set(ms.successes.values()) == {1}
        assert set(judge_srv.stats().successes.values()) == {1}


def test_unscored_judgements_retried_then_kept_and_counted(tmp_path):
    items = load_items(split="sample")[:6]

    def garbling_model(request):
        text = request["messages"][-1]["content"]
        return "GARBLE " + text if text == items[0].request else model_reply(request)

    with FakeOpenAIServer(garbling_model) as model_srv, FakeOpenAIServer(judge_reply) as judge_srv:
        with Store.open_project(tmp_path) as store:
            out = _run(store, items, model_srv, judge_srv)
            s = out.summary
            assert s.n_unscored == 1 and s.overall.n_scored == 5 and s.complete
            assert sum(s.score_counts.values()) == 5
            row = store.run_rows(out.run_id)[0]
            assert row.judged and row.score is None and row.judge_raw == "I am not able to rate this."
        attempts = judge_srv.stats().attempts
        assert sorted(attempts.values()) == [1, 1, 1, 1, 1, 3]  # the garbled one asked 3 times in all


def _count(db: Path, table: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sigkill_mid_run_then_resume(tmp_path):
    items = load_items(split="sample")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with FakeOpenAIServer(model_reply, latency=0.15) as model_srv, FakeOpenAIServer(judge_reply) as judge_srv:
        cmd = [
            sys.executable,
            "-m",
            "medsafetybench.cli",
            "eval",
            "--model",
            f"openai:tiny@{model_srv.base_url}",
            "--judge",
            f"openai:judge@{judge_srv.base_url}",
            "--split",
            "sample",
            "--project",
            str(tmp_path),
            "--concurrency",
            "2",
            "--json",
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        db = tmp_path / "medsafety.db"
        deadline = time.monotonic() + 60
        while _count(db, "responses") < 6 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stored_before = _count(db, "responses")
        assert 0 < stored_before < len(items), "the kill must land mid-run"
        with Store(db) as store:
            finished = {
                prompt_key(
                    [{"role": m["role"], "content": m["content"]} for m in __import__("json").loads(req)["messages"]]
                )
                for (req,) in store.conn.execute("SELECT request FROM responses")
            }

        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        report = __import__("json").loads(done.stdout)
        assert report["model_calls"] == len(items) - stored_before
        stats = model_srv.stats()
        assert all(stats.successes[k] == 1 for k in finished)  # nothing finished was asked again
        with Store(db) as store:
            assert store.conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == len(items)
            assert store.conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == len(items)
            run_id = report["run_id"]
            assert len(store.run_rows(run_id)) == len(items)
            assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert report["summary"]["complete"] is True


def test_run_id_depends_on_everything_that_changes_results():
    items = load_items(split="sample")[:3]
    base = run_id_for("m", EvalSettings(), items)
    assert run_id_for("m2", EvalSettings(), items) != base
    assert run_id_for("m", EvalSettings(), items, "overrefusal") != base
    assert run_id_for("m", EvalSettings(system_prompt="x"), items) != base
    assert run_id_for("m", EvalSettings(), items[:2]) != base
    assert run_id_for("m", EvalSettings(), items) == base
