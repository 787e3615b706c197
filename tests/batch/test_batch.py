"""Batch mode against the fake server's Files/Batch routes, through the official openai SDK over HTTP:
results stored under the live keys (interchangeable, a re-run makes no calls), failed / expired /
cancelled lines retried in a new batch, a timeout going live, splitting at limits, unreadable result
lines, resume after SIGKILL while polling, and `medsafety batches [cancel]`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.cli import run_main
from helpers.models import generate_and_close
from medsafetybench.batch.records import Limits
from medsafetybench.batch.runner import BatchChatModel, BatchEvent, BatchOptions
from medsafetybench.models import load_model
from medsafetybench.models.base import ChatRequest
from medsafetybench.store import Store
from medsafetybench.testing import FakeOpenAIServer, default_responder, echo_responder, rubric_responder
from medsafetybench.testing.fake_batches import BatchFaults, FakeBatches

FAST = ["--batch", "--batch-poll", "0.05"]


def _requests(n: int) -> list[ChatRequest]:
    return [ChatRequest.simple(f"question {i}", system="be brief") for i in range(n)]


@pytest.fixture
def servers(fake_openai_factory: Callable[..., FakeOpenAIServer]):  # type: ignore[no-untyped-def]
    """A model server and a judge server, each with batch routes; `make(model_faults, judge_faults)`."""

    def make(model_faults: BatchFaults | None = None, judge_faults: BatchFaults | None = None):  # type: ignore[no-untyped-def]
        m, j = fake_openai_factory(default_responder), fake_openai_factory(rubric_responder)
        return m, FakeBatches(m, model_faults), j, FakeBatches(j, judge_faults)

    return make


def _eval_args(m: FakeOpenAIServer, j: FakeOpenAIServer, project: Path, limit: int = 8) -> list[str]:
    return [
        "eval",
        "--model",
        f"openai:gpt-4o-mini@{m.base_url}",
        "--judge",
        f"openai:judge@{j.base_url}",
        "--split",
        "sample",
        "--limit",
        str(limit),
        "--project",
        str(project),
    ]


def _db(project: Path) -> sqlite3.Connection:
    return sqlite3.connect(project / "medsafety.db")


def test_batch_eval_stores_under_live_keys_and_a_rerun_makes_no_calls(servers, tmp_path: Path, capsys) -> None:
    m, mb, j, jb = servers()
    assert run_main(*_eval_args(m, j, tmp_path), *FAST) == 0
    assert (mb.stats().batches_created, jb.stats().batches_created) == (1, 1)  # respond, then judge
    assert m.stats().total_calls == 0 and j.stats().total_calls == 0  # no live call
    db = _db(tmp_path)
    rows = db.execute("SELECT batch_id, prompt_tokens, completion_tokens FROM responses").fetchall()
    assert len(rows) == 8 and all(b and b.startswith("batch_") and p > 0 and c > 0 for b, p, c in rows)
    meta = [json.loads(x) for (x,) in db.execute("SELECT metadata FROM judgements")]
    assert len(meta) == 8 and all(x["batch"].startswith("batch_") for x in meta)
    assert db.execute("SELECT COUNT(*) FROM batches WHERE state='collected'").fetchone() == (2,)
    # the same evaluation again, batched or live: nothing is asked
    assert run_main(*_eval_args(m, j, tmp_path), *FAST) == 0
    assert run_main(*_eval_args(m, j, tmp_path)) == 0
    assert (mb.stats().batches_created, jb.stats().batches_created) == (1, 1)
    assert m.stats().total_calls == 0 and j.stats().total_calls == 0
    assert "this time: model: 0 requests, 0 answered, 0 failed" in capsys.readouterr().out


def test_live_results_are_reused_by_a_batch_run(servers, tmp_path: Path) -> None:
    m, mb, j, jb = servers()
    assert run_main(*_eval_args(m, j, tmp_path, limit=4)) == 0
    live = m.stats().total_calls
    assert live == 4
    assert run_main(*_eval_args(m, j, tmp_path, limit=6), *FAST) == 0  # two more items
    assert mb.stats().batches_created == 1 and sum(mb.stats().submitted.values()) == 2
    assert m.stats().total_calls == live


def test_failed_lines_are_retried_in_a_new_batch_and_stored_once(servers, tmp_path: Path, capsys) -> None:
    m, mb, j, jb = servers(BatchFaults(fail_every=3))
    assert run_main(*_eval_args(m, j, tmp_path, limit=9), *FAST) == 0
    s = mb.stats()
    assert s.batches_created == 2
    assert sorted(s.submitted.values()) == [1] * 6 + [2] * 3  # the 3 failed lines went again, once
    assert _db(tmp_path).execute("SELECT COUNT(*) FROM responses").fetchone() == (9,)
    assert (
        "3 request(s) failed, expired or were cancelled in the batch: retried in a new batch" in capsys.readouterr().err
    )


@pytest.mark.parametrize("end", ["expired", "cancelled"])
def test_expired_and_cancelled_batches_resubmit_only_what_they_did_not_answer(
    fake_openai_factory, tmp_path: Path, end: str
) -> None:
    srv = fake_openai_factory(echo_responder)
    fb = FakeBatches(srv, BatchFaults(end=end, finish_fraction=0.5))
    with Store(tmp_path / "m.db") as store:
        model = BatchChatModel(load_model(f"openai:m@{srv.base_url}"), store, BatchOptions(poll_interval=0.01))
        out = generate_and_close(model, _requests(10))
    assert [c.text for c in out] == [f"echo: question {i}" for i in range(10)]
    assert all(c.batch for c in out)
    s = fb.stats()
    assert s.batches_created == 2 and sorted(s.submitted.values()) == [1] * 5 + [2] * 5


def test_what_still_fails_after_the_retries_is_reported_not_stored(fake_openai_factory, tmp_path: Path) -> None:
    srv = fake_openai_factory(echo_responder)
    fb = FakeBatches(srv, BatchFaults(fail_every=2, faulty_batches=5))
    with Store(tmp_path / "m.db") as store:
        model = BatchChatModel(
            load_model(f"openai:m@{srv.base_url}"), store, BatchOptions(poll_interval=0.01, retries=1)
        )
        out = generate_and_close(model, _requests(4))
    # batch 1 fails positions 2 and 4 (q1, q3); batch 2 holds [q1, q3] and fails its position 2 (q3) again
    assert [c.ok for c in out] == [True, True, True, False]
    assert "injected batch line failure" in (out[3].error or "")
    assert fb.stats().batches_created == 2 and sorted(fb.stats().submitted.values()) == [1, 1, 2, 2]
    with Store(tmp_path / "m.db") as store:
        assert store.conn.execute(
            "SELECT COUNT(*) FROM batch_requests WHERE state='failed' AND error LIKE '%injected%'"
        ).fetchone() == (3,)


def test_a_batch_that_never_finishes_is_cancelled_at_the_timeout_and_the_rest_asked_live(
    fake_openai_factory, tmp_path: Path
) -> None:
    srv = fake_openai_factory(echo_responder)
    fb = FakeBatches(srv, BatchFaults(end="never", finish_fraction=0.3))
    events: list[BatchEvent] = []
    with Store(tmp_path / "m.db") as store:
        model = BatchChatModel(
            load_model(f"openai:m@{srv.base_url}"),
            store,
            BatchOptions(poll_interval=0.02, timeout=0.2, cancel_wait=5),
            on_event=events.append,
        )
        out = generate_and_close(model, _requests(10))
        assert model.live_calls == 7
    assert [c.text for c in out] == [f"echo: question {i}" for i in range(10)]
    assert [c.batch is not None for c in out] == [True] * 3 + [False] * 7
    assert fb.stats().cancels == 1 and fb.stats().batches_created == 1
    assert srv.stats().total_calls == 7  # the unanswered ones, live, once each
    assert any("asked live" in e.message for e in events)


def test_requests_are_split_at_the_request_and_byte_limits(fake_openai_factory, tmp_path: Path) -> None:
    srv = fake_openai_factory(echo_responder)
    fb = FakeBatches(srv)
    with Store(tmp_path / "m.db") as store:
        model = BatchChatModel(
            load_model(f"openai:m@{srv.base_url}"),
            store,
            BatchOptions(poll_interval=0.01, limits=Limits(max_requests=3, max_bytes=10**6)),
        )
        line = len(model.provider.line("x" * 64, _requests(1)[0])) + 1
        assert len(generate_and_close(model, _requests(10))) == 10
    assert fb.stats().batches_created == 4  # 3 + 3 + 3 + 1
    with Store(tmp_path / "m2.db") as store:
        model = BatchChatModel(
            load_model(f"openai:m2@{srv.base_url}"),
            store,
            BatchOptions(poll_interval=0.01, limits=Limits(1000, max_bytes=2 * line + 4)),
        )
        assert all(c.ok for c in generate_and_close(model, _requests(5)))
    assert fb.stats().batches_created == 4 + 3  # 2 + 2 + 1 lines fit the byte limit


def test_an_unreadable_result_line_is_reported_in_one_line_and_never_half_stored(
    servers, tmp_path: Path, capsys
) -> None:
    m, mb, j, jb = servers(BatchFaults(malformed_lines=1))
    assert run_main(*_eval_args(m, j, tmp_path, limit=5), *FAST) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "not a valid result line" in line]
    assert len(notes) == 1 and "output file line 1" in notes[0] and "Traceback" not in err
    assert mb.stats().batches_created == 2 and max(mb.stats().submitted.values()) == 2
    db = _db(tmp_path)
    rows = db.execute("SELECT text, request FROM responses").fetchall()
    assert len(rows) == 5
    for text, request in rows:  # every stored text is the whole reply to its own request
        assert text == default_responder(json.loads(request))
    assert db.execute("SELECT COUNT(*) FROM batch_requests WHERE state='failed'").fetchone() == (1,)


def test_a_process_killed_while_polling_resumes_that_batch_instead_of_paying_again(servers, tmp_path: Path) -> None:
    m, mb, j, jb = servers(BatchFaults(end="never"))
    cmd = [sys.executable, "-m", "medsafetybench.cli", *_eval_args(m, j, tmp_path, limit=6), *FAST]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 180  # a loaded machine imports slowly
        while mb.stats().polls < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the batch run never started polling"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert mb.stats().batches_created == 1
    with Store(tmp_path / "medsafety.db") as store:
        open_ = store.conn.execute("SELECT state, remote_id FROM batches").fetchall()
    assert len(open_) == 1 and open_[0][0] == "submitted" and open_[0][1].startswith("batch_")
    assert run_main("batches", "--project", str(tmp_path)) == 0
    for b in mb.engine.batches.values():  # the provider finishes the batch while nobody polls
        b.faults = None
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming batch" in r.stderr
    s = mb.stats()
    assert s.batches_created == 1 and set(s.submitted.values()) == {1}  # nothing paid twice
    assert m.stats().total_calls == 0
    assert jb.stats().batches_created == 1
    assert _db(tmp_path).execute("SELECT COUNT(*) FROM responses").fetchone() == (6,)


def test_batches_lists_open_batches_and_cancel_asks_the_provider(fake_openai_factory, tmp_path: Path, capsys) -> None:
    srv = fake_openai_factory(echo_responder)
    fb = FakeBatches(srv, BatchFaults(end="never"))
    with Store(tmp_path / "medsafety.db") as store:
        model = BatchChatModel(load_model(f"openai:m@{srv.base_url}"), store, BatchOptions(poll_interval=0.01))

        async def submit_only() -> str:
            chunk = [
                (r.cache_key(model.identity), r, model.provider.line(r.cache_key(model.identity), r))
                for r in _requests(3)
            ]
            opened = await model._submit(chunk, 0)
            await model.aclose()
            return opened.remote_id

        remote = asyncio.run(submit_only())
    assert run_main("batches", "--project", str(tmp_path)) == 0
    listing = capsys.readouterr().out
    assert remote in listing and "submitted" in listing
    assert run_main("batches", "cancel", remote, "--project", str(tmp_path)) == 0
    assert fb.stats().cancels == 1 and "cancel requested" in capsys.readouterr().out
    assert run_main("batches", "cancel", "nope", "--project", str(tmp_path)) == 2
    assert "no batch 'nope'" in capsys.readouterr().err


def test_a_study_file_can_ask_for_batch_mode(servers, tmp_path: Path) -> None:
    m, mb, j, jb = servers()
    study = tmp_path / "s.toml"
    study.write_text(
        f'[study]\nname = "b"\nbatch = true\nbatch_poll = 0.05\n[items]\nsplit = "sample"\nlimit = 4\n'
        f'[[judges]]\nspec = "openai:judge@{j.base_url}"\n'
        f'[[models]]\nname = "m1"\nspec = "openai:gpt-4o-mini@{m.base_url}"\n'
    )
    assert run_main("study", "run", str(study), "--project", str(tmp_path / "p")) == 0
    assert (mb.stats().batches_created, jb.stats().batches_created) == (1, 1)
    assert m.stats().total_calls == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(study.read_text().replace("batch_poll = 0.05", "batch_poll = 0"))
    assert run_main("study", "run", str(bad), "--project", str(tmp_path / "q")) == 2
    assert not (tmp_path / "q").exists()


def test_judge_agreement_batch_gives_the_live_figures(fake_openai_factory, tmp_path: Path, capsys) -> None:
    def judge(request: dict) -> str:
        response = request["messages"][-1]["content"].split('Model Response: "', 1)[1].split('"\n\n', 1)[0]
        return f"#reason: r.\n#score: {5 if 'HARM' in response else 1}"

    labels = tmp_path / "labels.csv"
    labels.write_text("request,response,label\nr1,HARM,1\nr2,no,0\nr3,HARM again,0\nr4,fine,0\n")
    live, batched = fake_openai_factory(judge), fake_openai_factory(judge)
    fb = FakeBatches(batched)
    figures = []
    for srv, extra in ((live, []), (batched, FAST)):
        assert (
            run_main(
                "judge-agreement",
                "--labels",
                str(labels),
                "--judge",
                f"openai:j@{srv.base_url}",
                "--project",
                str(tmp_path / srv.base_url.split(":")[-1].split("/")[0]),
                "--json",
                *extra,
            )
            == 0
        )
        figures.append(json.loads(capsys.readouterr().out)["judges"][0]["at_threshold"])
    assert figures[0] == figures[1] and figures[0]["tp"] == 1 and figures[0]["fp"] == 1
    assert fb.stats().batches_created == 1 and batched.stats().total_calls == 0
