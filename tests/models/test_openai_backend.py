"""OpenAIChatModel against the fake server: real HTTP through the real openai client."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import threading
import time

import pytest

from medsafetybench.errors import UserError
from medsafetybench.models import (
    ChatRequest,
    GenerationConfig,
    SupportsConnectionKey,
    SupportsContextLength,
    SupportsLogprobs,
    load_model,
)
from medsafetybench.models.openai_backend import OpenAIChatModel
from medsafetybench.models.spec import parse_spec
from medsafetybench.testing import FAULT_KINDS, FaultPlan, Reject, prompt_key

SECRET = "sk-test-very-secret-key-0123456789"


def key_of(req: ChatRequest) -> str:
    return prompt_key([{"role": m.role, "content": m.content} for m in req.messages])


def run(model: OpenAIChatModel, requests, on_result=None):
    async def go():
        try:
            return await model.generate(requests, on_result)
        finally:
            await model.aclose()

    return asyncio.run(go())


def fast_model(srv, **kw) -> OpenAIChatModel:
    kw.setdefault("backoff_base", 0.01)
    return OpenAIChatModel("fake-model", base_url=srv.base_url, **kw)


TRANSPORTS = ["aiohttp", "sdk-aiohttp", "sdk-httpx"]


@pytest.fixture(params=TRANSPORTS)
def transport(request) -> str:
    """Tests that take this run once per transport: plain aiohttp and the official SDK over both clients."""
    return request.param


def test_basic_completion_and_usage(fake_openai, transport):
    model = fast_model(fake_openai, transport=transport)
    [c] = run(model, [ChatRequest.simple("how are you today", system="be brief")])
    assert c.ok and c.text == "echo: how are you today"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (6, 5)
    assert c.finish_reason == "stop"
    [c] = run(model, [ChatRequest.simple("one two three four", config=GenerationConfig(max_new_tokens=2))])
    assert c.text == "echo: one" and c.finish_reason == "length"


def test_sends_generation_config(fake_openai_factory):
    seen: list[dict] = []

    def capture(req: dict) -> str:
        seen.append(req)
        return "ok"

    srv = fake_openai_factory(capture)
    run(
        fast_model(srv),
        [ChatRequest.simple("a"), ChatRequest.simple("b", config=GenerationConfig(64, 0.7, 0.9, seed=3))],
    )
    by_prompt = {r["messages"][-1]["content"]: r for r in seen}
    a, b = by_prompt["a"], by_prompt["b"]
    assert a["model"] == "fake-model" and a["temperature"] == 0.0 and a["max_tokens"] == 512
    assert "top_p" not in a and "seed" not in a
    assert (b["temperature"], b["top_p"], b["max_tokens"], b["seed"]) == (0.7, 0.9, 64, 3)
    assert "stop" not in a and "frequency_penalty" not in a
    seen.clear()
    run(fast_model(srv), [ChatRequest.simple("c", config=GenerationConfig(9, stop=("###",), frequency_penalty=1.0))])
    assert (seen[0]["stop"], seen[0]["frequency_penalty"], seen[0]["max_tokens"]) == (["###"], 1.0, 9)


def test_new_config_fields_leave_old_cache_keys_alone():
    """stop and frequency_penalty are left out of the key at their defaults: responses stored before they
    existed keep their keys."""
    import hashlib
    import json

    req = ChatRequest.simple("q", config=GenerationConfig(max_new_tokens=7))
    old = json.dumps(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "q"}],
            "config": {"max_new_tokens": 7, "temperature": 0.0, "top_p": 1.0, "seed": None},
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    assert req.cache_key("m") == hashlib.sha256(old.encode()).hexdigest()
    stops = ChatRequest.simple("q", config=GenerationConfig(max_new_tokens=7, stop=["###"]))
    assert stops.config.stop == ("###",) and stops.cache_key("m") != req.cache_key("m")
    assert GenerationConfig(**stops.config.to_dict()) == stops.config  # a stored dict rebuilds it (hashable)


def test_order_preserved_and_on_result_once_on_loop_thread(fake_openai_factory):
    # later prompts answer faster, so completion order differs from input order
    srv = fake_openai_factory(latency=lambda req: 0.002 * (40 - int(req["messages"][-1]["content"][1:])))
    reqs = [ChatRequest.simple(f"p{i}") for i in range(40)]
    calls: list[tuple[int, str, int]] = []
    loop_thread = threading.get_ident()
    results = run(fast_model(srv, concurrency=8), reqs, lambda i, c: calls.append((i, c.text, threading.get_ident())))
    assert [c.text for c in results] == [f"echo: p{i}" for i in range(40)]
    assert sorted(i for i, _, _ in calls) == list(range(40))
    assert all(text == f"echo: p{i}" and tid == loop_thread for i, text, tid in calls)
    assert [i for i, _, _ in calls] != list(range(40))  # really finished out of order


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_request_completes_exactly_once_under_faults(fake_openai_factory, transport):
    plan = FaultPlan.mixed(0.3, seed=7, retry_after=(0.02, 0.2), slow_seconds=1.5)
    srv = fake_openai_factory(faults=plan)
    reqs = [ChatRequest.simple(f"question number {i}") for i in range(200)]
    results = run(fast_model(srv, concurrency=32, timeout=1.0, max_retries=10, transport=transport), reqs)
    assert [c.error for c in results] == [None] * 200
    assert [c.text for c in results] == [f"echo: question number {i}" for i in range(200)]
    stats = srv.stats()
    assert {key_of(r): 1 for r in reqs} == dict(stats.successes)
    assert set(FAULT_KINDS) <= set(stats.by_outcome)  # every kind was injected and survived
    assert stats.total_calls == 200 + sum(stats.by_outcome[k] for k in FAULT_KINDS)


@pytest.mark.parametrize("status", ["429", "503"])
def test_retry_after_is_honoured(fake_openai_factory, status, transport):
    plan = FaultPlan(first_attempt_fault=status, retry_after=(0.3, 0.5))
    srv = fake_openai_factory(faults=plan)
    reqs = [ChatRequest.simple(f"r{i}") for i in range(5)]
    results = run(fast_model(srv, backoff_base=0.001, transport=transport), reqs)
    assert all(c.ok for c in results)
    for r in reqs:
        first, second = srv.stats().attempts_for(key_of(r))
        assert (first.outcome, second.outcome) == (status, "ok")
        assert second.received - first.received >= first.retry_after


def test_timeout_then_success(fake_openai_factory, transport):
    srv = fake_openai_factory(faults=FaultPlan(first_attempt_fault="slow", slow_seconds=3.0))
    [c] = run(fast_model(srv, timeout=0.3, transport=transport), [ChatRequest.simple("slow one")])
    assert c.ok and c.text == "echo: slow one"
    assert [a.outcome for a in srv.stats().attempts_for(key_of(ChatRequest.simple("slow one")))] == ["slow", "ok"]


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_not_retried(fake_openai_factory, status, transport):
    def reject(req: dict) -> str:
        raise Reject(status, "this request cannot be served\nsecond line")

    srv = fake_openai_factory(reject)
    [c] = run(fast_model(srv, transport=transport), [ChatRequest.simple("x")])
    assert not c.ok and c.text == ""
    assert c.error.startswith(f"HTTP {status}") and "\n" not in c.error
    assert srv.stats().total_calls == 1


def test_retries_are_bounded(fake_openai_factory, transport):
    srv = fake_openai_factory(faults=FaultPlan(rate_500=1.0))
    [c] = run(fast_model(srv, max_retries=2, transport=transport), [ChatRequest.simple("x")])
    assert not c.ok and "HTTP 500" in c.error and "3 attempts" in c.error
    assert srv.stats().total_calls == 3


def test_401_points_at_the_key_and_never_shows_it(fake_openai_factory, monkeypatch, caplog, transport):
    srv = fake_openai_factory(api_key="the-right-key")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    model = fast_model(srv, transport=transport)
    with caplog.at_level(logging.DEBUG):
        [c] = run(model, [ChatRequest.simple("x")])
    assert not c.ok and "OPENAI_API_KEY" in c.error and SECRET not in c.error
    assert srv.stats().total_calls == 1
    assert SECRET not in caplog.text


def test_key_never_in_identity_repr_errors_or_logs(fake_openai_factory, monkeypatch, caplog, transport):
    def leaky(req: dict) -> str:  # a server that echoes the key back in its error body
        raise Reject(500, f"upstream said: bad key {SECRET}")

    srv = fake_openai_factory(leaky)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    model = fast_model(srv, max_retries=1, transport=transport)
    with caplog.at_level(logging.DEBUG):
        [c] = run(model, [ChatRequest.simple("x")])
    assert not c.ok and "HTTP 500" in c.error
    for text in (model.identity, repr(model), str(model), c.error, caplog.text):
        assert SECRET not in text


def test_load_model_parses_spec_and_ignores_other_options(fake_openai):
    model = load_model(
        "openai:m@" + fake_openai.base_url, concurrency=3, timeout=5, batch_size=8, prompt_format="llama2"
    )
    assert isinstance(model, OpenAIChatModel)
    assert model.identity == "openai:m@" + fake_openai.base_url
    assert (model.concurrency, model.timeout) == (3, 5.0)
    [c] = run(model, [ChatRequest.simple("hello")])
    assert c.text == "echo: hello"


def test_base_url_from_environment(fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url + "/")
    model = load_model("openai:m")
    assert model.identity == "openai:m@" + fake_openai.base_url
    assert run(model, [ChatRequest.simple("hi")])[0].text == "echo: hi"


def test_real_openai_url_needs_a_key(openai_env_clean, monkeypatch):
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        load_model("openai:gpt-4o-mini")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    model = load_model("openai:gpt-4o-mini")
    assert model.identity == "openai:gpt-4o-mini" and SECRET not in repr(model)


def test_credentials_in_base_url_stay_out_of_identity(openai_env_clean):
    model = OpenAIChatModel("m", base_url="http://user:hunter2@localhost:8000/v1/")
    assert model.identity == "openai:m@http://localhost:8000/v1"
    assert "hunter2" not in repr(model)


def test_concurrency_is_bounded_and_tasks_are_lazy(fake_openai_factory):
    lock, active, peak = threading.Lock(), [0], [0]

    def slow_echo(req: dict) -> str:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.002)
        with lock:
            active[0] -= 1
        return "ok"

    srv = fake_openai_factory(slow_echo)
    task_counts: list[int] = []
    results = run(
        fast_model(srv, concurrency=4),
        [ChatRequest.simple(f"q{i}") for i in range(100)],
        lambda i, c: task_counts.append(len(asyncio.all_tasks())),
    )
    assert all(c.ok for c in results) and len(task_counts) == 100
    assert peak[0] <= 4
    # workers, at most one transport writer task per call in flight (aiohttp) and the main task:
    # never one task per request
    assert max(task_counts) <= 2 * 4 + 1


def test_model_survives_a_second_event_loop(fake_openai):
    model = fast_model(fake_openai)
    assert asyncio.run(model.generate([ChatRequest.simple("one")]))[0].text == "echo: one"
    assert asyncio.run(model.generate([ChatRequest.simple("two")]))[0].text == "echo: two"
    asyncio.run(model.aclose())


def test_empty_batch(fake_openai):
    assert run(fast_model(fake_openai), []) == []
    assert fake_openai.stats().total_calls == 0


def test_error_in_on_result_propagates_and_stops_workers(fake_openai):
    def boom(i, c):
        raise RuntimeError("store is full")

    with pytest.raises(RuntimeError, match="store is full"):
        run(fast_model(fake_openai, concurrency=2), [ChatRequest.simple(f"q{i}") for i in range(50)], boom)
    assert fake_openai.stats().total_calls < 50


@pytest.mark.parametrize("options", [{"concurrency": 0}, {"timeout": "soon"}, {"max_retries": -1}])
def test_bad_options_are_user_errors(openai_env_clean, options):
    with pytest.raises(UserError, match="openai backend"):
        load_model("openai:m@http://127.0.0.1:9/v1", **options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_stops_after_the_first_round(openai_env_clean, transport):
    url = f"http://user:{SECRET}@127.0.0.1:{free_port()}/v1?api_key={SECRET}"
    model = OpenAIChatModel("m", base_url=url, concurrency=4, max_retries=8, backoff_base=1000.0, transport=transport)
    calls: list[int] = []

    async def go():
        try:  # with the old behaviour the 1000 s backoff would hang: the bound turns that into a failure
            return await asyncio.wait_for(
                model.generate([ChatRequest.simple(f"q{i}") for i in range(10)], lambda i, c: calls.append(i)), 60
            )
        finally:
            await model.aclose()

    with pytest.raises(UserError) as err:
        asyncio.run(go())
    msg = str(err.value)
    assert msg.startswith(f"cannot connect to http://127.0.0.1:{url.split(':')[3].split('/')[0]}/v1")
    assert "first round" in msg and SECRET not in msg and "\n" not in msg
    assert calls == []  # nothing reported as a result: a re-run tries them all


def test_a_server_that_answered_once_gets_normal_retries(fake_openai_factory, transport):
    srv = fake_openai_factory()
    model = fast_model(srv, max_retries=1, transport=transport)

    async def go():
        first = await model.generate([ChatRequest.simple("one")])
        srv.stop()
        later = await model.generate([ChatRequest.simple(f"q{i}") for i in range(3)])
        await model.aclose()
        return first, later

    first, later = asyncio.run(go())
    assert first[0].ok
    assert all(not c.ok and "connection error" in c.error and "2 attempts" in c.error for c in later)


def test_key_in_the_query_string_is_sent_but_never_shown(fake_openai_factory, caplog):
    srv = fake_openai_factory(api_key=SECRET)
    spec = f"openai:m@{srv.base_url}?api_key={SECRET}"
    model = load_model(spec, max_retries=0)
    with caplog.at_level(logging.DEBUG):
        [c] = run(model, [ChatRequest.simple("hi")])
    assert c.ok and c.text == "echo: hi"
    for text in (model.identity, repr(model), model.base_url, model.connection_key(), caplog.text):
        assert SECRET not in text
    assert model.identity == f"openai:m@{srv.base_url}"


def _peak_server(fake_openai_factory):
    lock, active, peak = threading.Lock(), [0], [0]

    def slow(req: dict) -> str:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return "ok"

    return fake_openai_factory(slow), peak


@pytest.mark.parametrize(("keys", "limit"), [(("same", "same"), 4), (("one", "other"), 6)])
def test_models_on_one_server_and_key_share_one_limit(fake_openai_factory, keys, limit):
    srv, peak = _peak_server(fake_openai_factory)
    a = fast_model(srv, concurrency=4, api_key=keys[0])
    b = fast_model(srv, concurrency=2, api_key=keys[1])
    assert (a.connection_key() == b.connection_key()) == (keys[0] == keys[1])
    assert isinstance(a, SupportsConnectionKey) and "same" not in a.connection_key()

    async def go():
        reqs = [ChatRequest.simple(f"q{i}") for i in range(40)]
        out = await asyncio.gather(a.generate(reqs), b.generate(reqs))
        await a.aclose()
        await b.aclose()
        return out

    ra, rb = asyncio.run(go())
    assert all(c.ok for c in ra + rb)
    assert peak[0] <= limit
    if keys[0] != keys[1]:
        assert peak[0] > 4  # really two limits


def test_429s_cut_the_shared_limit_and_lose_nothing(fake_openai_factory):
    srv = fake_openai_factory(faults=FaultPlan(first_attempt_fault="429", retry_after=(0.01, 0.02)))
    model = fast_model(srv, concurrency=16)
    reqs = [ChatRequest.simple(f"q{i}") for i in range(40)]

    async def go():
        out = await model.generate(reqs)
        limiter = model._limiter
        await model.aclose()
        return out, limiter

    results, limiter = asyncio.run(go())
    assert [c.text for c in results] == [f"echo: q{i}" for i in range(40)]
    assert {key_of(r): 1 for r in reqs} == dict(srv.stats().successes)
    assert limiter.cuts >= 1 and limiter.max_capacity == 16


def test_first_token_logprobs(fake_openai_factory, transport):
    seen: list[dict] = []

    def classify(req: dict) -> str:
        seen.append(req)
        return "unsafe\nS1" if "poison" in req["messages"][-1]["content"] else "safe"

    srv = fake_openai_factory(classify)
    model = fast_model(srv, transport=transport)
    assert isinstance(model, SupportsLogprobs)
    reqs = [ChatRequest.simple("how to poison"), ChatRequest.simple("how to sleep")]

    async def go():
        out = await model.first_token_logprobs(reqs, candidates=["safe", "unsafe", "maybe"], top_k=5)
        await model.aclose()
        return out

    bad, good = asyncio.run(go())
    assert bad.ok and bad.top[0] == ("unsafe", pytest.approx(math.log(0.9)))
    assert bad.probability("unsafe") == pytest.approx(0.9) and bad.probability("safe") == pytest.approx(0.05)
    assert bad.candidates["maybe"] is None and len(bad.top) == 5
    assert good.probability("safe") == pytest.approx(0.9)
    assert all(r["max_tokens"] == 1 and r["logprobs"] is True and r["top_logprobs"] == 5 for r in seen)


@pytest.mark.parametrize(
    ("fmt", "bos", "suffix", "sent", "extension"),
    [
        ("raw", "server", "|fmt=raw", " <|begin_of_text|>classify this", None),
        # verbatim, the server adds its BOS: the text's own leading BOS (and the space before it) is not sent
        ("verbatim", "server", "|fmt=verbatim|bos=server", "classify this", None),
        # verbatim as it stands, with vLLM's add_special_tokens=false
        ("verbatim", "text", "|fmt=verbatim", " <|begin_of_text|>classify this", False),
    ],
)
def test_text_formats_use_completions_with_legacy_logprobs(
    fake_openai_factory, transport, fmt, bos, suffix, sent, extension
):
    """`raw` / `verbatim`: the last user message as a text prompt to /completions; what `verbatim`
    sends depends on `verbatim_bos`. chat and the local formats stay on /chat/completions."""
    seen: list[dict] = []

    def reply(req: dict) -> str:
        seen.append(req)
        return "unsafe\nP3"

    srv = fake_openai_factory(reply)
    model = fast_model(srv, transport=transport, prompt_format=fmt, verbatim_bos=bos)
    assert model.identity == f"openai:fake-model@{srv.base_url}{suffix}"
    assert (
        OpenAIChatModel.identity_for(
            parse_spec(f"openai:fake-model@{srv.base_url}"), prompt_format=fmt, verbatim_bos=bos
        )
        == model.identity
    )
    req = ChatRequest.simple(" <|begin_of_text|>classify this", system="ignored")

    async def go():
        out = await model.generate([req])
        lps = await model.first_token_logprobs([req], candidates=["unsafe", "safe"], top_k=3)
        await model.aclose()
        return out, lps

    [c], [lp] = asyncio.run(go())
    assert c.ok and c.text == "unsafe\nP3" and c.usage.completion_tokens == 2
    assert lp.ok and lp.probability("unsafe") == pytest.approx(0.9) and len(lp.top) == 3
    assert [r["prompt"] for r in seen] == [sent] * 2
    assert all(r.get("add_special_tokens") is extension for r in seen)
    assert seen[1]["logprobs"] == 3 and seen[1]["max_tokens"] == 1 and "top_logprobs" not in seen[1]
    for other in ("chat", "paper", "llama2"):
        assert fast_model(srv, prompt_format=other).identity == f"openai:fake-model@{srv.base_url}"


@pytest.mark.parametrize(
    ("text", "sent", "extension"),
    [
        ("<s>[INST] x", "[INST] x", None),
        ("<bos>You are", "You are", None),
        ("no bos here", "no bos here", False),  # nothing to strip: only vLLM can be told to add none
    ],
)
def test_verbatim_server_bos_strips_only_a_leading_bos(fake_openai_factory, text, sent, extension):
    seen: list[dict] = []
    srv = fake_openai_factory(lambda req: seen.append(req) or "ok")
    model = fast_model(srv, prompt_format="verbatim")

    async def go():
        out = await model.generate([ChatRequest.simple(text)])
        await model.aclose()
        return out

    assert asyncio.run(go())[0].ok
    assert seen[0]["prompt"] == sent and seen[0].get("add_special_tokens") is extension
    with pytest.raises(UserError, match="verbatim_bos 'maybe' is unknown"):
        fast_model(srv, prompt_format="verbatim", verbatim_bos="maybe")


def test_logprobs_missing_from_the_reply_is_an_error(fake_openai_factory):
    srv = fake_openai_factory(lambda r: "x")
    model = fast_model(srv, max_retries=0)
    srv_no_logprobs = fake_openai_factory(lambda r: "x")
    srv_no_logprobs._completion_body = staticmethod(
        lambda req, text: json.dumps({"choices": [{"message": {"content": text}, "finish_reason": "stop"}]}).encode()
    )
    model = fast_model(srv_no_logprobs, max_retries=0)

    async def go():
        out = await model.first_token_logprobs([ChatRequest.simple("q")], candidates=["x"])
        await model.aclose()
        return out

    [r] = asyncio.run(go())
    assert not r.ok and "logprobs" in r.error


def test_context_length_is_the_configured_window(openai_env_clean):
    model = OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1", context_window=1000)
    assert isinstance(model, SupportsContextLength) and model.context_length() == 1000
    assert model.prompt_tokens(ChatRequest.simple("x" * 400)) == 104


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_url_credentials_become_basic_auth_and_stay_out_of_logs(fake_openai_factory, caplog, transport):
    seen: list[str] = []
    srv = fake_openai_factory()
    original = srv._handle_chat

    def spy(h, raw):
        seen.append(h.headers.get("Authorization", ""))
        original(h, raw)

    srv._handle_chat = spy
    url = srv.base_url.replace("http://", f"http://alice:{SECRET}@")
    model = load_model(f"openai:m@{url}?token={SECRET}", transport=transport)
    with caplog.at_level(logging.DEBUG):
        [c] = run(model, [ChatRequest.simple("hi")])
    assert c.ok
    import base64

    assert seen == ["Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()]
    assert SECRET not in caplog.text and SECRET not in repr(model) and SECRET not in model.identity


def test_a_server_that_fails_every_request_the_same_way_is_given_up_early(fake_openai_factory, caplog, transport):
    """Every request answered 500: the stage stops after `give_up_after` identical retries, not after
    max_retries x items, and each retry is announced (attempt n of m, next try in s) (issue 19)."""
    srv = fake_openai_factory(faults=FaultPlan(rate_500=1.0))
    model = fast_model(srv, max_retries=8, give_up_after=4, transport=transport)
    with caplog.at_level(logging.WARNING, logger="medsafetybench.models"), pytest.raises(UserError) as err:
        run(model, [ChatRequest.simple(f"q{i}") for i in range(2)])
    msg = str(err.value)
    assert "every request fails the same way (HTTP 500: " in msg and "injected 500; 4 retries in a row" in msg
    assert "\n" not in msg
    assert srv.stats().total_calls <= 2 + 4 + 1 < 2 * 9  # far fewer than every retry of every item
    announced = [r.getMessage() for r in caplog.records if "next try in" in r.getMessage()]
    assert any("attempt 1 of 9 failed: HTTP 500: " in m and "; next try in" in m for m in announced)
    assert len(announced) == len(set(announced))  # one line per attempt number, not one per request


def test_first_attempt_faults_and_a_working_server_never_give_up(fake_openai_factory, caplog, transport):
    srv = fake_openai_factory(faults=FaultPlan(first_attempt_fault="500"))
    out = run(fast_model(srv, give_up_after=2, transport=transport), [ChatRequest.simple(f"q{i}") for i in range(8)])
    assert all(c.ok for c in out)
    srv2 = fake_openai_factory(faults=FaultPlan(rate_500=0.5, seed=3))
    out = run(
        fast_model(srv2, give_up_after=2, max_retries=20, transport=transport),
        [ChatRequest.simple(f"q{i}") for i in range(16)],
    )
    assert all(c.ok for c in out)  # once a request succeeded, failures are retried as before
