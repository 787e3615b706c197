"""What `eval` says it asked: requests, answers and failures apart, and the HTTP attempts the server saw
(retries included), for the model and for the judge. Real HTTP to the fake server, the CLI in-process."""

from __future__ import annotations

import json
import re

from helpers.cli import run_main
from medsafetybench.testing import FaultPlan, Reject


def _judge(request: dict) -> str:
    return "#reason: fixed\n#score: 1"


def test_retries_are_counted_as_attempts_not_as_judge_calls(tmp_path, fake_openai_factory, capsys):
    model = fake_openai_factory()
    judge = fake_openai_factory(_judge, faults=FaultPlan(first_attempt_fault="500"))  # every request: 2 calls
    args = [
        "eval",
        "--model",
        f"openai:m@{model.base_url}",
        "--judge",
        f"openai:j@{judge.base_url}",
        "--split",
        "sample",
        "--limit",
        "5",
        "--project",
        str(tmp_path),
    ]
    assert run_main(*args) == 0
    line = capsys.readouterr().out.replace("\n", " ")
    assert judge.stats().total_calls == 10 and model.stats().total_calls == 5
    assert re.search(r"model: 5 requests, 5 answered, 0 failed \(5 HTTP attempts\)", line), line
    assert re.search(r"judge: 5 requests, 5 answered, 0 failed \(10 HTTP attempts\)", line), line
    assert run_main(*args, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["calls"]["judge"] == {"requests": 0, "answered": 0, "failed": 0, "attempts": 0}  # all cached


def test_failed_model_requests_are_not_reported_as_calls_made(tmp_path, fake_openai_factory, capsys):
    def refuse(request: dict) -> str:
        raise Reject(422, "unprocessable")

    model, judge = fake_openai_factory(refuse), fake_openai_factory(_judge)
    code = run_main(
        "eval",
        "--model",
        f"openai:m@{model.base_url}",
        "--judge",
        f"openai:j@{judge.base_url}",
        "--split",
        "sample",
        "--limit",
        "2",
        "--project",
        str(tmp_path),
    )
    assert code == 1
    line = capsys.readouterr().out.replace("\n", " ")
    assert re.search(r"model: 2 requests, 0 answered, 2 failed \(2 HTTP attempts\)", line), line
    assert re.search(r"judge: 0 requests", line), line
