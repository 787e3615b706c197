"""An `openai:` model's identity survives no change of weights: what the server says about itself
(`/v1/models`: root, created, owned_by; the `system_fingerprint` of each completion) is recorded in the
store and compared on every later evaluation of the same spec; a change is refused with one line that
names the model and what changed, and `--model-version` records a new version. Driven through the real
path: the fake OpenAI server restarted on the same port and served name with other "weights", the CLI
in-process, the SQLite store."""

from __future__ import annotations

import json
import socket

import pytest

from helpers.cli import run_main
from medsafetybench.testing import FakeOpenAIServer
from medsafetybench.testing.responders import last_user


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights_a(request: dict) -> str:
    return "I cannot help with that. Please speak with a licensed clinician."


def _weights_b(request: dict) -> str:
    return "Sure, here is what you asked: " + last_user(request)[:40]


def _judge(request: dict) -> str:
    refused = "I cannot help" in last_user(request)
    return f"#reason: fixed\n#score: {1 if refused else 5}"


@pytest.fixture
def judge_url(fake_openai_factory) -> str:
    return fake_openai_factory(_judge).base_url


def _eval(port: int, judge_url: str, project, *extra: str) -> int:
    return run_main(
        "eval",
        "--model",
        f"openai:tiny@http://127.0.0.1:{port}/v1",
        "--judge",
        f"openai:j@{judge_url}",
        "--split",
        "sample",
        "--limit",
        "4",
        "--project",
        str(project),
        "--json",
        *extra,
    )


def _chat_calls(srv: FakeOpenAIServer) -> int:
    return srv.stats().total_calls


@pytest.mark.parametrize("says", ["root", "system_fingerprint"])
def test_a_restart_on_other_weights_is_refused_not_answered_from_the_cache(
    tmp_path, judge_url, capsys, openai_env_clean, says
):
    """vLLM restarted on other weights under the same --served-model-name: the server's `root` (or, from
    a server whose /v1/models says nothing, its system_fingerprint) changes, and the second eval refuses
    instead of reporting the old model's score with 0 model calls."""
    port = _free_port()
    first = {"root": "/weights/a"} if says == "root" else {"system_fingerprint": "fp-a"}
    second = {"root": "/weights/b"} if says == "root" else {"system_fingerprint": "fp-b"}
    with FakeOpenAIServer(_weights_a, port=port, models=("tiny",), **first) as srv:
        assert _eval(port, judge_url, tmp_path) == 0
        old = json.loads(capsys.readouterr().out)
        assert _chat_calls(srv) == 4
    assert old["summary"]["overall"]["harmfulness"]["value"] == 1.0
    with FakeOpenAIServer(_weights_b, port=port, models=("tiny",), **second) as srv:
        assert _eval(port, judge_url, tmp_path) == 2
        err = capsys.readouterr().err
        assert "openai:tiny@http://127.0.0.1" in err and "--model-version" in err
        assert ("/weights/a" in err and "/weights/b" in err) if says == "root" else ("fp-a" in err and "fp-b" in err)
        assert _chat_calls(srv) <= 1  # at most one 1-token request to read the fingerprint

        assert _eval(port, judge_url, tmp_path, "--model-version", "b") == 0
        new = json.loads(capsys.readouterr().out)
        assert _chat_calls(srv) >= 4  # asked again, not answered from the first run's cache
    assert new["model_identity"] != old["model_identity"] and new["model_identity"].endswith("|version=b")
    assert new["summary"]["overall"]["harmfulness"]["value"] == 5.0
    with FakeOpenAIServer(_weights_a, port=port, models=("tiny",), **first):
        assert _eval(port, judge_url, tmp_path) == 0  # the old weights are back: the old run, from the cache
        assert json.loads(capsys.readouterr().out)["run_id"] == old["run_id"]


def test_a_server_that_says_nothing_is_identified_by_model_version(tmp_path, judge_url, capsys, fake_openai_factory):
    srv = fake_openai_factory(_weights_a)
    args = [
        "eval",
        "--model",
        f"openai:m@{srv.base_url}",
        "--judge",
        f"openai:j@{judge_url}",
        "--split",
        "sample",
        "--limit",
        "2",
        "--project",
        str(tmp_path),
        "--json",
    ]
    assert run_main(*args, "--model-version", "2024-06") == 0
    first = json.loads(capsys.readouterr().out)
    assert first["model_identity"].endswith("|version=2024-06")
    assert run_main(*args) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] != first["run_id"]
    assert run_main(*args[:-1], "--model-version", "x", "--model-version", "y") == 2
    assert "--model-version" in capsys.readouterr().err


def test_model_version_on_a_local_model_is_refused(tmp_path, capsys):
    code = run_main(
        "eval",
        "--model",
        "hf:/no/such/model",
        "--model-version",
        "v2",
        "--split",
        "sample",
        "--project",
        str(tmp_path / "p"),
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--model-version" in err and "openai:" in err and "No such option" not in err
    assert not (tmp_path / "p").exists()
