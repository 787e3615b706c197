"""The Ray engine on a local 2-CPU cluster with the tiny model: the same responses, scores and cache keys as one
process; a replica killed mid-run loses nothing and stores nothing twice; user mistakes are one-line errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from helpers.cli import run_main
from medsafetybench.data import load_items
from medsafetybench.errors import UserError
from medsafetybench.evaluation.pipeline import EvalSettings, evaluate
from medsafetybench.judging import load_judge
from medsafetybench.models import GenerationConfig, load_model
from medsafetybench.models.engine import load_on_engine, parse_engine
from medsafetybench.models.hf_backend import HFChatModel
from medsafetybench.models.ray_engine import RayChatModel, import_ray, pack_dir, stage_dir
from medsafetybench.store import Store

pytest.importorskip("ray", reason="the [ray] extra is not installed")
pytest.importorskip("transformers")
SETTINGS = EvalSettings(generation=GenerationConfig(max_new_tokens=8))


def judge_reply(request: dict) -> str:
    """An LLM judge over HTTP whose score follows the response (so scores check the responses too)."""
    response = request["messages"][-1]["content"].split('Model Response: "', 1)[1]
    return f"#reason: r\n#score: {1 + len(response) % 5}"


def _ray_model(tiny: Path, replicas: int = 2, **kw) -> RayChatModel:
    # half a CPU each: the shared model and a test's own fit on the 2-CPU cluster together
    return RayChatModel(f"hf:{tiny}", {"batch_size": 4}, replicas=replicas, num_cpus=0.5, **kw)


@pytest.fixture(scope="module")
def tiny_on_ray(ray_cluster, tiny_model_dir):
    """The tiny model on two replicas, shared by the tests that leave it whole."""
    model = _ray_model(tiny_model_dir, chunk=2)
    yield model
    asyncio.run(model.aclose())


def _evaluate(store: Store, items, model, judge_url: str):
    async def go():
        judge = load_judge(f"openai:judge@{judge_url}", concurrency=4)
        try:
            return await evaluate(store, items, model, judge, model_spec="hf:tiny", settings=SETTINGS)
        finally:
            await judge.aclose()

    return asyncio.run(go())


def test_ray_run_equals_one_process_and_shares_its_cache(tiny_on_ray, tiny_model_dir, tmp_path, fake_openai_factory):
    judge = fake_openai_factory(judge_reply)
    items = load_items("sample", limit=10)
    model = tiny_on_ray
    local_model = load_model(f"hf:{tiny_model_dir}", batch_size=4)
    assert model.identity == local_model.identity  # the same identity, so the same cache keys
    with Store.open_project(tmp_path / "ray") as store:
        sent = model.stats.sent
        on_ray = _evaluate(store, items, model, judge.base_url)
        assert on_ray.responses.calls == on_ray.responses.stored == 10 and model.stats.sent - sent == 10
        assert len(set(model.replica_pids())) == 2 and os.getpid() not in model.replica_pids()
        ray_texts = [r.response for r in store.run_rows(on_ray.run_id)]
        judge_calls = judge.stats().total_calls
        # the same evaluation in this process finds every response and judgement in the store
        again = _evaluate(store, items, local_model, judge.base_url)
        assert again.run_id == on_ray.run_id and again.responses.calls == 0 and again.judgements.calls == 0
        assert judge.stats().total_calls == judge_calls
        # given the identity, replicas start only when something is missing: here, never
        lazy = RayChatModel(f"hf:{tiny_model_dir}", {"batch_size": 4}, identity=model.identity, start=False)
        assert _evaluate(store, items, lazy, judge.base_url).responses.calls == 0 and lazy.slots == []
    with Store.open_project(tmp_path / "local") as store:
        local = _evaluate(store, items, local_model, judge.base_url)
        local_texts = [r.response for r in store.run_rows(local.run_id)]
    assert ray_texts == local_texts and all(ray_texts)
    assert on_ray.summary.to_dict() == local.summary.to_dict()


class Saboteur:
    """A `ChatModel` around a `RayChatModel` that kills replicas when given numbers of results have arrived,
    and counts how often each request index is delivered."""

    def __init__(self, inner: RayChatModel, kills: dict) -> None:
        self.inner, self.kills = inner, kills
        self.identity = inner.identity
        self.stream_slice, self.stream_window = inner.stream_slice, inner.stream_window
        self.delivered: dict[int, int] = {}

    async def generate(self, requests, on_result=None):
        def cb(i, completion):
            self.delivered[i] = self.delivered.get(i, 0) + 1
            kill = self.kills.pop(sum(self.delivered.values()), None)
            if kill is not None:
                kill(self.inner)
            if on_result is not None:
                on_result(i, completion)

        return await self.inner.generate(requests, on_result=cb)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_killed_replicas_lose_nothing_and_store_nothing_twice(
    ray_cluster, tiny_model_dir, tmp_path, fake_openai_factory
):
    """Replica 1's worker is SIGKILLed after the first result (Ray restarts it); replica 0 is killed for good
    after the sixth, so the rest must be done by the restarted replica 1."""
    judge = fake_openai_factory(judge_reply)
    items = load_items("sample", limit=12)

    def crash(model: RayChatModel) -> None:
        os.kill(model.replica_pids()[1], signal.SIGKILL)

    def kill_for_good(model: RayChatModel) -> None:
        ray_cluster.kill(model.slots[0].handle, no_restart=True)

    with Store.open_project(tmp_path) as store:
        model = Saboteur(_ray_model(tiny_model_dir, chunk=1, max_restarts=1), {1: crash, 6: kill_for_good})
        try:
            out = _evaluate(store, items, model, judge.base_url)
            alive = [s.alive for s in model.inner.slots]
        finally:
            asyncio.run(model.aclose())
        stats = model.inner.stats
        assert not model.kills and stats.replica_failures >= 2 and stats.requeued >= 2
        assert alive == [False, True] and stats.retired == 1
        assert sorted(model.delivered) == list(range(12)) and set(model.delivered.values()) == {1}
        assert stats.completed == 12 and stats.sent == 12 + stats.requeued
        assert out.responses.calls == out.responses.stored == 12 and out.responses.failed == 0
        assert all(r.response is not None and r.judged for r in store.run_rows(out.run_id))
        n_stored = store.conn.execute(
            "SELECT COUNT(*) FROM responses WHERE model_identity = ?", (model.identity,)
        ).fetchone()[0]
        assert n_stored == 12 and out.judgements.calls == 12  # each response stored and judged once
        again = _evaluate(store, items, load_model(f"hf:{tiny_model_dir}", batch_size=4), judge.base_url)
        assert again.responses.calls == 0 and again.judgements.calls == 0


def test_remote_loglik_equals_local(tiny_on_ray, tiny_model_dir):
    from medsafetybench.medqa.loglik import LogLikScorer

    view = tiny_on_ray.loglik_view("raw")
    local = HFChatModel(tiny_model_dir, prompt_format="raw", batch_size=4)
    assert view.identity == local.identity
    local.load()
    pairs = [
        ("Question: which drug lowers fever?\nAnswer:", (" aspirin", " sand")),
        ("Question: is water wet?\nAnswer:", (" yes", " no", " maybe")),
    ]
    for add_bos in (True, False):  # True: the harness default (medqa's since 0.2); False: release 0.1.0's
        want = LogLikScorer(local.model, local.tokenizer, batch_size=4, add_bos=add_bos).score(pairs)
        assert view.loglik_scorer(batch_size=4, add_bos=add_bos).score(pairs) == want


def test_cli_eval_engine_ray_then_local_shares_the_run(
    ray_cluster, tiny_model_dir, tmp_path, fake_openai_factory, capsys
):
    judge = fake_openai_factory(judge_reply)
    args = [
        "eval",
        "--model",
        f"hf:{tiny_model_dir}",
        "--split",
        "sample",
        "--limit",
        "4",
        "--max-new-tokens",
        "6",
        "--judge",
        f"openai:judge@{judge.base_url}",
        "--project",
        str(tmp_path),
        "--json",
    ]
    assert run_main(*args, "--engine", "ray") == 0  # one replica of one CPU: the shared model holds the other
    first = json.loads(capsys.readouterr().out)
    assert first["model_calls"] == 4 and first["judge_calls"] == 4
    assert run_main(*args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["run_id"] == first["run_id"] and second["model_calls"] == 0 and second["judge_calls"] == 0
    assert second["summary"] == first["summary"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "spark"], "--engine 'spark' is not known"),
        (["--replicas", "2"], "--replicas 2 needs --engine ray"),
        (["--engine", "ray", "--replicas", "3"], "the Ray cluster has 2"),
    ],
)
def test_cli_engine_mistakes_are_one_line(ray_cluster, tiny_model_dir, tmp_path, capsys, args, message):
    code = run_main(
        "eval",
        "--model",
        f"hf:{tiny_model_dir}",
        "--split",
        "sample",
        "--limit",
        "2",
        "--project",
        str(tmp_path),
        *args,
    )
    err = capsys.readouterr().err
    assert code == 2 and message in " ".join(err.split()) and "Traceback" not in err


def test_engine_user_errors(ray_cluster, tmp_path):
    with pytest.raises(UserError, match="serves local models"):
        RayChatModel("openai:gpt-4o-mini", replicas=1)
    with pytest.raises(UserError, match="does not exist"):  # raised in the replica, shown as one line here
        RayChatModel(f"hf:{tmp_path}/missing-model", replicas=1, num_cpus=0.5)
    assert parse_engine("ray:10.0.0.5:6379") == ("ray", "10.0.0.5:6379") and parse_engine(None) == ("local", None)
    with pytest.raises(UserError, match="not known"):
        parse_engine("local:host")


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UserError, match=r"medsafetybench\[ray\]"):
        import_ray()


def test_stage_dir_writes_once_and_never_overwrites(tmp_path):
    src = tmp_path / "adapter"
    (src / "sub").mkdir(parents=True)
    (src / "adapter_config.json").write_text("{}")
    (src / "sub" / "w.bin").write_bytes(b"\0" * 10)
    files = pack_dir(src)
    target = tmp_path / "elsewhere" / "adapter"
    assert stage_dir(target, files) and pack_dir(target) == files
    assert not stage_dir(target, files)  # already there
    assert not any(p.name.startswith(".") for p in target.parent.iterdir())
    with pytest.raises(UserError, match="other contents"):
        stage_dir(target, {"adapter_config.json": b"{ }"})


def test_a_cached_run_starts_no_replica(ray_cluster, tiny_model_dir, tmp_path, fake_openai_factory):
    """load_on_engine(engine="ray") names the identity on the driver when it sees the weights; the replicas then
    start on the first request, so re-running a finished evaluation starts none."""
    judge = fake_openai_factory(judge_reply)
    items = load_items("sample", limit=4)
    with Store.open_project(tmp_path) as store:
        first = load_on_engine(f"hf:{tiny_model_dir}", engine="ray", batch_size=4)
        assert first.slots == [] and first.identity == load_model(f"hf:{tiny_model_dir}").identity
        try:
            assert _evaluate(store, items, first, judge.base_url).responses.calls == 4
            assert len(first.slots) == 1
        finally:
            asyncio.run(first.aclose())
        again = load_on_engine(f"hf:{tiny_model_dir}", engine="ray", batch_size=4)
        try:
            assert _evaluate(store, items, again, judge.base_url).responses.calls == 0
            assert again.slots == []  # nothing to ask: no actor was started
        finally:
            asyncio.run(again.aclose())
