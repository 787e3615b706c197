"""The fake OpenAI server on its own, spoken to with raw stdlib HTTP."""

from __future__ import annotations

import http.client
import json
import math
import threading
import time

import pytest

from medsafetybench.testing import (
    FAULT_KINDS,
    FakeOpenAIServer,
    FaultPlan,
    default_responder,
    prompt_key,
)

MSGS = [{"role": "system", "content": "be kind"}, {"role": "user", "content": "what is aspirin"}]


def post(conn: http.client.HTTPConnection, body: dict | bytes, path: str = "/v1/chat/completions"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp, resp.read()


def connect(srv: FakeOpenAIServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)


def test_chat_completion_shape_and_usage(fake_openai):
    resp, raw = post(connect(fake_openai), {"model": "m1", "messages": MSGS})
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
    body = json.loads(raw)
    assert body["object"] == "chat.completion" and body["model"] == "m1" and body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "echo: what is aspirin"}
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


def test_keep_alive_serves_many_requests_on_one_connection(fake_openai):
    conn = connect(fake_openai)
    for i in range(5):
        resp, raw = post(conn, {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]})
        assert json.loads(raw)["choices"][0]["message"]["content"] == f"echo: q{i}"
        assert resp.version == 11 and not resp.will_close


def test_models_and_unknown_routes(fake_openai):
    conn = connect(fake_openai)
    conn.request("GET", "/v1/models")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["data"][0]["id"] == "fake-model"
    conn.request("GET", "/nope")
    resp = conn.getresponse()
    assert resp.status == 404 and "error" in json.loads(resp.read())
    resp, _ = post(conn, {"messages": MSGS}, path="/v1/embeddings")
    assert resp.status == 404
    resp, raw = post(conn, {"messages": MSGS}, path="/v1/completions")  # a text completion needs a prompt
    assert resp.status == 400 and "prompt" in json.loads(raw)["error"]["message"]


def test_text_completions_with_legacy_logprobs(fake_openai):
    conn = connect(fake_openai)
    resp, raw = post(
        conn, {"model": "m", "prompt": "hello there", "max_tokens": 5, "logprobs": 3}, path="/v1/completions"
    )
    body = json.loads(raw)
    assert resp.status == 200 and body["object"] == "text_completion"
    choice = body["choices"][0]
    assert choice["text"] == "echo: hello there"  # responders see the prompt as one user message
    top = choice["logprobs"]["top_logprobs"][0]
    assert len(top) == 3 and abs(math.exp(top["echo:"]) - 0.9) < 1e-9
    resp, raw = post(conn, {"model": "m", "prompt": "hello"}, path="/v1/completions")
    assert json.loads(raw)["choices"][0]["logprobs"] is None


@pytest.mark.parametrize("body", [b"not json", b'{"messages": []}', b'{"model": "m"}'])
def test_bad_requests_get_400(fake_openai, body):
    resp, raw = post(connect(fake_openai), body)
    assert resp.status == 400 and "messages" in json.loads(raw)["error"]["message"]


def test_default_responder_is_deterministic_and_benign():
    replies = {default_responder({"messages": [{"role": "user", "content": f"request {i}"}]}) for i in range(20)}
    assert "I cannot help with that. Please speak with a licensed clinician." in replies
    assert any(r.startswith("Here is some general information") for r in replies)
    req = {"messages": [{"role": "user", "content": "same"}]}
    assert default_responder(req) == default_responder(req)


def test_fault_plan_is_seeded_and_matches_rates():
    plan = FaultPlan.mixed(0.6, seed=1)
    decisions = [plan.decide(f"k{i}", 0)[0] for i in range(3000)]
    assert decisions == [FaultPlan.mixed(0.6, seed=1).decide(f"k{i}", 0)[0] for i in range(3000)]
    assert decisions != [FaultPlan.mixed(0.6, seed=2).decide(f"k{i}", 0)[0] for i in range(3000)]
    faulted = sum(d is not None for d in decisions) / len(decisions)
    assert 0.55 < faulted < 0.65 and set(decisions) == {None, *FAULT_KINDS}
    assert all(0.05 <= plan.decide(f"k{i}", 0)[1] <= 1.0 for i in range(100))
    with pytest.raises(ValueError):
        FaultPlan(rate_429=0.7, rate_500=0.7)
    with pytest.raises(ValueError):
        FaultPlan(first_attempt_fault="teapot")


def test_first_attempt_fault_then_success_and_stats(fake_openai_factory):
    srv = fake_openai_factory(faults=FaultPlan(first_attempt_fault="429", retry_after=(0.2, 0.2)))
    conn = connect(srv)
    resp, raw = post(conn, {"model": "m", "messages": MSGS})
    assert resp.status == 429 and resp.getheader("Retry-After") == "0.2"
    resp, raw = post(conn, {"model": "m", "messages": MSGS})
    assert resp.status == 200
    stats = srv.stats()
    key = prompt_key(MSGS)
    assert stats.total_calls == 2 and stats.successes[key] == 1 and stats.attempts[key] == 2
    assert dict(stats.by_outcome) == {"429": 1, "ok": 1}
    assert [a.outcome for a in stats.attempts_for(key)] == ["429", "ok"]
    srv.reset_stats()
    assert srv.stats().total_calls == 0


def test_malformed_body_and_dropped_connection(fake_openai_factory):
    srv = fake_openai_factory(faults=FaultPlan(first_attempt_fault="malformed"))
    resp, raw = post(connect(srv), {"model": "m", "messages": MSGS})
    assert resp.status == 200
    with pytest.raises(ValueError):
        json.loads(raw)
    srv = fake_openai_factory(faults=FaultPlan(first_attempt_fault="drop"))
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        post(connect(srv), {"model": "m", "messages": MSGS})
    assert srv.stats().by_outcome["drop"] == 1 and not srv.stats().successes


def test_slow_reply_is_never_a_success(fake_openai_factory):
    srv = fake_openai_factory(faults=FaultPlan(rate_slow=1.0, slow_seconds=0.1))
    resp, _ = post(connect(srv), {"model": "m", "messages": MSGS})
    assert resp.status == 504 and not srv.stats().successes


def test_stop_is_prompt_with_open_connections_and_slow_replies():
    srv = FakeOpenAIServer(faults=FaultPlan(rate_slow=1.0, slow_seconds=60)).start()
    idle = connect(srv)
    post(idle, b"{}")  # leaves an idle keep-alive connection open
    stuck = threading.Thread(target=lambda: _swallow(post, connect(srv), {"messages": MSGS}), daemon=True)
    stuck.start()
    time.sleep(0.2)  # let the slow request reach the server
    t0 = time.monotonic()
    srv.stop()
    stuck.join(timeout=10)
    assert not stuck.is_alive() and time.monotonic() - t0 < 10
    with pytest.raises(RuntimeError):
        _ = srv.base_url


def test_context_manager_and_latency():
    with FakeOpenAIServer(latency=0.05) as srv:
        assert srv.base_url.startswith("http://127.0.0.1:") and srv.base_url.endswith("/v1")
        resp, raw = post(connect(srv), {"model": "m", "messages": MSGS})
        assert resp.status == 200 and json.loads(raw)["choices"][0]["message"]["content"]


def _swallow(fn, *args):
    try:
        fn(*args)
    except (OSError, http.client.HTTPException):
        pass


def test_a_client_that_hangs_up_prints_no_traceback(capfd):
    """A client that disconnects before its reply is a normal event, not a BrokenPipeError traceback
    on the server's stderr (issue 19, item 12)."""
    import socket
    import struct

    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with FakeOpenAIServer(lambda r: "x" * 200_000, latency=0.3) as srv:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
            s.close()
        deadline = time.time() + 5
        while srv.stats().by_outcome.get("write_failed", 0) < 3 and time.time() < deadline:
            time.sleep(0.05)
        assert srv.stats().by_outcome.get("write_failed", 0) == 3  # the server did try to answer each
        conn = connect(srv)  # and still serves the next client
        assert post(conn, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})[0].status == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err, err
