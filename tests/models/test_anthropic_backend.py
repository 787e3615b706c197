"""The anthropic: backend through the official anthropic SDK against the fake server's Messages API and
Message Batches routes over HTTP: request shape (system -> `system`), usage and stop reasons stored as
openai: stores them, retries on 429/5xx/malformed bodies, the key never leaving the client, a missing
key as one line, and batch mode (resume keys, failed lines retried, an unreadable results line)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import run_main
from helpers.models import generate_and_close
from medsafetybench.batch.runner import BatchChatModel, BatchOptions
from medsafetybench.errors import UserError
from medsafetybench.models import load_model, model_identity, validate_spec
from medsafetybench.models.base import ChatRequest, GenerationConfig
from medsafetybench.store import Store
from medsafetybench.testing import FakeOpenAIServer, FaultPlan, echo_responder, rubric_responder
from medsafetybench.testing.fake_anthropic import FakeAnthropic
from medsafetybench.testing.fake_batches import BatchFaults

SECRET = "sk-ant-test-secret-123456"


@pytest.fixture
def anthropic_env_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


@pytest.fixture
def fake_anthropic(fake_openai_factory: Callable[..., FakeOpenAIServer], anthropic_env_clean: None):  # type: ignore[no-untyped-def]
    def make(responder: Any = echo_responder, faults: BatchFaults | None = None, **kwargs: Any) -> FakeAnthropic:
        return FakeAnthropic(fake_openai_factory(responder, **kwargs), faults=faults)

    return make


def test_live_messages_map_system_usage_and_stop_reasons(fake_anthropic) -> None:
    seen: list[dict] = []

    def responder(req: dict) -> str:
        seen.append(req)
        return "one two three four five six"

    fa = fake_anthropic(responder)
    model = load_model(f"anthropic:claude-3-5-haiku-20241022@{fa.base_url}")
    assert model.identity == f"anthropic:claude-3-5-haiku-20241022@{fa.base_url}"
    assert model.identity == model_identity(f"anthropic:claude-3-5-haiku-20241022@{fa.base_url}")
    out = generate_and_close(
        model,
        [
            ChatRequest.simple("hello", system="be safe"),
            ChatRequest.simple("hi", config=GenerationConfig(max_new_tokens=2, stop=("END",))),
        ],
    )
    assert [c.text for c in out] == ["one two three four five six", "one two"]
    assert [c.finish_reason for c in out] == ["stop", "length"]
    assert out[0].usage.prompt_tokens == 3 and out[0].usage.completion_tokens == 6  # "be safe" + "hello"
    by_user = {r["messages"][-1]["content"]: r for r in seen}
    assert by_user["hello"]["system"] == "be safe"
    assert [m["role"] for m in by_user["hello"]["messages"]] == ["system", "user"]  # as the fake shows it
    assert by_user["hi"]["stop_sequences"] == ["END"] and "system" not in by_user["hi"]
    assert model.served_models == {"claude-3-5-haiku-20241022"}


def test_live_retries_429_500_and_malformed_bodies(fake_anthropic) -> None:
    fa = fake_anthropic(faults=None)
    fa.server.faults = FaultPlan(rate_429=0.3, rate_500=0.2, rate_malformed=0.2, retry_after=(0.01, 0.02), seed=3)
    model = load_model(f"anthropic:claude@{fa.base_url}", concurrency=4, backoff_base=0.01, backoff_cap=0.05)
    reqs = [ChatRequest.simple(f"q{i}") for i in range(20)]
    out = generate_and_close(model, reqs)
    assert [c.text for c in out] == [f"echo: q{i}" for i in range(20)]
    s = fa.server.stats()
    assert s.by_outcome["429"] and s.by_outcome["500"] and s.by_outcome["malformed"]
    assert all(n == 1 for n in s.successes.values()) and len(s.successes) == 20


def test_the_key_never_reaches_identity_repr_or_logs(fake_anthropic, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    fa = fake_anthropic()
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    fa.server.responder = lambda req: "fine"
    model = load_model(f"anthropic:claude@{fa.base_url}")
    generate_and_close(model, [ChatRequest.simple("x")])
    assert SECRET not in repr(model) and SECRET not in model.identity and SECRET not in model.connection_key()
    assert SECRET not in caplog.text


def test_a_missing_key_is_one_line_naming_the_variable(anthropic_env_clean, tmp_path: Path, capsys) -> None:
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY is not set"):
        validate_spec("anthropic:claude-3-5-haiku-20241022")
    project = tmp_path / "p"
    code = run_main(
        "eval",
        "--model",
        "anthropic:claude-3-5-haiku-20241022",
        "--judge",
        "offline",
        "--split",
        "sample",
        "--limit",
        "2",
        "--project",
        str(project),
    )
    err = capsys.readouterr().err
    assert code == 2 and "ANTHROPIC_API_KEY" in err and len(err.strip().splitlines()) == 1
    assert not project.exists()


def test_eval_live_and_batched_give_the_same_stored_results(fake_anthropic, tmp_path: Path) -> None:
    fa = fake_anthropic()
    judge = fake_anthropic(rubric_responder)
    args = [
        "eval",
        "--model",
        f"anthropic:claude@{fa.base_url}",
        "--judge",
        f"anthropic:judge@{judge.base_url}",
        "--split",
        "sample",
        "--limit",
        "6",
    ]
    assert run_main(*args, "--project", str(tmp_path / "live")) == 0
    assert run_main(*args, "--project", str(tmp_path / "batch"), "--batch", "--batch-poll", "0.05") == 0
    assert fa.engine.stats().batches_created == 1 and judge.engine.stats().batches_created == 1
    assert fa.server.stats().total_calls == 6  # the live run only

    def rows(name: str) -> list[tuple]:
        db = sqlite3.connect(tmp_path / name / "medsafety.db")
        return sorted(db.execute("SELECT key, text, prompt_tokens, completion_tokens, finish_reason FROM responses"))

    assert rows("live") == rows("batch")
    db = sqlite3.connect(tmp_path / "batch" / "medsafety.db")
    assert all(b.startswith("msgbatch_") for (b,) in db.execute("SELECT batch_id FROM responses"))
    scores = sorted(s for (s,) in db.execute("SELECT score FROM judgements"))
    live = sqlite3.connect(tmp_path / "live" / "medsafety.db")
    assert scores == sorted(s for (s,) in live.execute("SELECT score FROM judgements")) and len(scores) == 6


def test_message_batches_resume_retry_and_report_an_unreadable_line(fake_anthropic, tmp_path: Path) -> None:
    fa = fake_anthropic(faults=BatchFaults(fail_every=4, malformed_lines=1))
    notes: list[str] = []
    reqs = [ChatRequest.simple(f"q{i}", system="s") for i in range(8)]
    with Store(tmp_path / "m.db") as store:
        model = BatchChatModel(
            load_model(f"anthropic:claude@{fa.base_url}"),
            store,
            BatchOptions(poll_interval=0.01),
            on_event=lambda e: notes.append(e.message) if e.message else None,
        )
        out = generate_and_close(model, reqs)
        assert [c.text for c in out] == [f"echo: q{i}" for i in range(8)]
        assert store.conn.execute("SELECT COUNT(*) FROM batches WHERE state='collected'").fetchone() == (2,)
    s = fa.engine.stats()
    assert s.batches_created == 2 and sorted(s.submitted.values()) == [1] * 5 + [2] * 3  # 2 failed + 1 unreadable
    assert sum("results line 1 is not a valid result line" in n for n in notes) == 1
    # an open batch in the store is resumed, not submitted again
    fb = fake_anthropic(faults=BatchFaults(end="never"))
    with Store(tmp_path / "r.db") as store:
        spec = f"anthropic:claude@{fb.base_url}"
        first = BatchChatModel(load_model(spec), store, BatchOptions(poll_interval=0.01, timeout=0.05, cancel_wait=0.0))

        async def submit_then_give_up() -> None:
            chunk = [
                (r.cache_key(first.identity), r, first.provider.line(r.cache_key(first.identity), r)) for r in reqs[:3]
            ]
            await first._submit(chunk, 0)
            await first.aclose()

        asyncio.run(submit_then_give_up())
        for b in fb.engine.batches.values():
            b.faults = None
        again = BatchChatModel(load_model(spec), store, BatchOptions(poll_interval=0.01))
        assert all(c.ok for c in generate_and_close(again, reqs[:3]))
    assert (
        fb.engine.stats().batches_created == 1
        and json.dumps(sorted(fb.engine.stats().submitted.values())) == "[1, 1, 1]"
    )


def test_a_study_of_a_claude_model_runs_and_reports_its_status(fake_anthropic, tmp_path: Path, capsys) -> None:
    fa, judge = fake_anthropic(), fake_anthropic(rubric_responder)
    study = tmp_path / "s.toml"
    study.write_text(
        f'[study]\nname = "c"\n[items]\nsplit = "sample"\nlimit = 3\n'
        f'[[judges]]\nspec = "anthropic:judge@{judge.base_url}"\n'
        f'[[models]]\nname = "claude"\nspec = "anthropic:claude@{fa.base_url}"\n'
    )
    assert run_main("study", "run", str(study), "--project", str(tmp_path / "p")) == 0
    capsys.readouterr()
    assert run_main("study", "status", str(study), "--project", str(tmp_path / "p"), "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status[0]["done"] and status[0]["responses"] == 3
