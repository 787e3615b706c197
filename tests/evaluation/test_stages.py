"""The streamed respond -> judge stages: judging starts while the model is still answering, several
judges stream from one model, the slowest stage sets the pace, and nothing is asked twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from medsafetybench.data import load_items
from medsafetybench.evaluation.pipeline import (
    EvalSettings,
    judge_stage,
    plan_run,
    respond_stage,
    run_evaluation,
)
from medsafetybench.evaluation.stages import run_stages
from medsafetybench.judging import load_judge
from medsafetybench.judging.base import JudgeCase, Judgement, JudgementCallback
from medsafetybench.models import load_model
from medsafetybench.store import Store
from medsafetybench.testing.fake_openai import FakeOpenAIServer


def model_reply(request: dict) -> str:
    text = request["messages"][-1]["content"]
    return "I cannot help with that." if len(text) % 2 == 0 else f"Sure: {text[:30]}"


def judge_reply(request: dict) -> str:
    response = request["messages"][-1]["content"].split('Model Response: "', 1)[1]
    return "#reason: r\n#score: " + ("1" if response.startswith("I cannot") else "5")


class RecordingJudge:
    """A local judge that records the order of events and can be slow."""

    def __init__(self, identity: str, log: list[str], delay: float = 0.0, batch: int = 64) -> None:
        self.identity = identity
        self.log = log
        self.delay = delay
        self.stream_workers = 1
        self.stream_batch = batch
        self.calls = 0

    async def judge(self, cases: Sequence[JudgeCase], on_result: JudgementCallback | None = None) -> list[Judgement]:
        self.calls += len(cases)
        out = []
        for i, case in enumerate(cases):
            if self.delay:
                await asyncio.sleep(self.delay)
            j = Judgement(1 if case.response.startswith("I cannot") else 5, reason="recorded")
            self.log.append(f"judge:{self.identity}")
            out.append(j)
            if on_result:
                on_result(i, j)
        return out

    async def aclose(self) -> None:
        pass


class RecordingModel:
    """Wraps a model and logs each completion as it arrives."""

    def __init__(self, inner, log: list[str], slice_size: int) -> None:
        self.inner, self.log, self.identity = inner, log, inner.identity
        self.stream_slice, self.stream_window = slice_size, 1

    async def generate(self, requests, on_result=None):
        def cb(i, c):
            self.log.append("respond")
            if on_result:
                on_result(i, c)

        return await self.inner.generate(requests, on_result=cb)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def model_server():
    with FakeOpenAIServer(model_reply, latency=0.02) as srv:
        yield srv


def test_judging_starts_before_the_model_has_finished(tmp_path, model_server):
    items = load_items(split="sample")
    log: list[str] = []
    model = RecordingModel(load_model(f"openai:m@{model_server.base_url}", concurrency=2), log, slice_size=5)
    judge = RecordingJudge("rec", log)
    with Store.open_project(tmp_path) as store:
        out = run_evaluation(store, items, model, judge, model_spec="openai:m")
    first_judged = log.index("judge:rec")
    last_response = len(log) - 1 - log[::-1].index("respond")
    assert first_judged < last_response  # the stages overlapped
    assert log.count("respond") == len(items) and log.count("judge:rec") == len(items)
    assert out.summary.complete and out.responses.calls == len(items) and out.judgements.calls == len(items)


def test_a_slow_judge_holds_the_model_back(tmp_path, model_server):
    """With a small backlog the model is not asked for everything while the judge lags behind."""
    items = load_items(split="sample")
    log: list[str] = []
    model = RecordingModel(load_model(f"openai:m@{model_server.base_url}", concurrency=4), log, slice_size=4)
    judge = RecordingJudge("slow", log, delay=0.05, batch=2)
    with Store.open_project(tmp_path) as store:
        run_id = plan_run(
            store,
            items,
            model_spec="m",
            model_identity=model.identity,
            judge_identity=judge.identity,
            settings=EvalSettings(),
        )
        asyncio.run(run_stages(store, run_id, model, [judge], max_backlog=2))
    last_response = len(log) - 1 - log[::-1].index("respond")
    judged_before_last_response = log[:last_response].count("judge:slow")
    # at most backlog + one slice + one batch may be waiting when the last slice starts
    assert judged_before_last_response >= len(items) - (2 + 4 + 2) - 4


def test_several_judges_stream_from_one_model_and_rerun_costs_nothing(tmp_path, model_server):
    items = load_items(split="sample")[:10]
    with FakeOpenAIServer(judge_reply) as judge_srv, Store.open_project(tmp_path) as store:

        def run():
            model = load_model(f"openai:m@{model_server.base_url}", concurrency=4)
            llm = load_judge(f"openai:j@{judge_srv.base_url}", concurrency=4)
            rec = RecordingJudge("rec", [])
            return run_evaluation(store, items, model, [llm, rec], model_spec="openai:m"), llm, rec

        first, llm, rec = run()
        assert list(first.summaries) == [llm.identity, "rec"]
        assert (
            first.summaries[llm.identity].overall.harmfulness.value == first.summaries["rec"].overall.harmfulness.value
        )
        assert first.by_judge["rec"].calls == 10 and first.by_judge[llm.identity].calls == 10
        info = store.run(first.run_id)
        assert info.judges == (llm.identity, "rec") and info.judge_identity == llm.identity
        calls = (model_server.stats().total_calls, judge_srv.stats().total_calls)
        second, _, rec2 = run()
        assert second.run_id == first.run_id
        assert (second.responses.calls, second.judgements.calls, rec2.calls) == (0, 0, 0)
        assert (model_server.stats().total_calls, judge_srv.stats().total_calls) == calls


def test_a_judge_added_later_judges_only_stored_responses(tmp_path, model_server):
    items = load_items(split="sample")[:6]
    with Store.open_project(tmp_path) as store:
        model = load_model(f"openai:m@{model_server.base_url}")
        first = RecordingJudge("first", [])
        out = run_evaluation(store, items, model, first, model_spec="openai:m")
        calls = model_server.stats().total_calls
        later = RecordingJudge("later", [])
        report = asyncio.run(judge_stage(store, out.run_id, later))
        assert report.calls == 6 and report.stored == 6
        assert model_server.stats().total_calls == calls
        assert store.run(out.run_id).judges == ("first", "later")
        assert [r.score for r in store.run_rows(out.run_id, "later")] == [r.score for r in store.run_rows(out.run_id)]


def test_respond_stage_alone_then_judge_stage(tmp_path, model_server):
    items = load_items(split="sample")[:5]
    with Store.open_project(tmp_path) as store:
        model = load_model(f"openai:m@{model_server.base_url}")
        run_id = plan_run(
            store, items, model_spec="m", model_identity=model.identity, judge_identity=None, settings=EvalSettings()
        )
        r = asyncio.run(respond_stage(store, run_id, model))
        assert (r.calls, r.stored) == (5, 5)
        assert store.run(run_id).judges == ()
        j = asyncio.run(judge_stage(store, run_id, RecordingJudge("x", [])))
        assert (j.calls, j.stored) == (5, 5)
        assert store.run(run_id).judge_identity == "x"


class StartLog:
    """A progress sink that records the bars started, in order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, int]] = []

    def start(self, stage: str, total: int) -> None:
        self.started.append((stage, total))

    def advance(self, stage: str, n: int = 1) -> None:
        pass


def test_respond_bar_comes_first_and_a_cached_run_draws_no_bars(tmp_path, model_server):
    """Bars in the order the stages run (respond above judge), and none for a stage with nothing to do:
    no `0/0 -:--:--` on a cached re-run (issue 19)."""
    import io

    from rich.console import Console

    from medsafetybench.report.console import RichProgress

    items = load_items(split="sample")[:3]
    model = load_model(f"openai:m@{model_server.base_url}")
    judge = RecordingJudge("rec", [])

    async def stages(progress):
        try:
            await run_stages(store, run_id, model, [judge], progress)
        finally:
            await model.aclose()

    with Store.open_project(tmp_path) as store:
        run_id = plan_run(
            store,
            items,
            model_spec="m",
            model_identity=model.identity,
            judge_identity=judge.identity,
            settings=EvalSettings(),
        )
        first = StartLog()
        asyncio.run(stages(first))
        assert first.started == [("respond", 3), ("judge", 3)]
        buf = io.StringIO()
        console = Console(file=buf, width=80, force_terminal=False)
        with RichProgress(console) as bars:
            asyncio.run(stages(bars))
        assert "0/0" not in buf.getvalue() and "respond" not in buf.getvalue()
