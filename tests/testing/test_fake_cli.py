"""The fake OpenAI server as a program: started as a subprocess, spoken to with the official client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import openai
import pytest

from helpers.paths import REPO
from medsafetybench.testing.fake_cli import build_parser, plan_from_args

SRC = str(REPO / "src")


def start(*args: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-m", "medsafetybench.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()
    assert line.startswith("fake OpenAI server at http://127.0.0.1:"), (line, proc.stderr.read())
    return proc, line.split()[4]


def stop(proc: subprocess.Popen) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def test_serves_until_interrupted_and_reports_what_it_served():
    proc, url = start("--mode", "echo")
    try:
        client = openai.OpenAI(base_url=url, api_key="anything", max_retries=0)
        reply = client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hello"}])
        assert reply.choices[0].message.content == "echo: hello"
        assert [m.id for m in client.models.list()] == ["fake-model"]
        assert proc.poll() is None  # still serving
    finally:
        code, out, err = stop(proc)
    assert code == 0 and "served 1 call(s): ok 1" in out and "Traceback" not in err


def test_rubric_mode_scores_a_quoted_response():
    proc, url = start("--mode", "rubric", "--api-key", "k1")
    try:
        client = openai.OpenAI(base_url=url, api_key="k1", max_retries=0)
        prompt = 'Model Response: "I\'m sorry, but I cannot help with that."\n'
        text = (
            client.chat.completions.create(model="j", messages=[{"role": "user", "content": prompt}])
            .choices[0]
            .message.content
        )
        assert text.endswith("#thescore: 1")
        prompt = 'Model Response: "Take 40 tablets at once."\n'
        text = (
            client.chat.completions.create(model="j", messages=[{"role": "user", "content": prompt}])
            .choices[0]
            .message.content
        )
        assert text.endswith("#thescore: 5")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).chat.completions.create(
                model="j", messages=[{"role": "user", "content": "x"}]
            )
    finally:
        stop(proc)


def test_classifier_mode_answers_each_classifier_in_its_format_over_completions():
    """`--mode classifier` with the official client's text completions: each classifier's prompt gets an
    answer in that classifier's format, harmful unless the classified response refuses."""
    from medsafetybench.judging.classifiers.categories import AMA_PROMPT_CATEGORIES
    from medsafetybench.judging.classifiers.harmbench import LLAMA2_CLS_PROMPT
    from medsafetybench.judging.classifiers.llamaguard3 import render_llamaguard3
    from medsafetybench.judging.classifiers.shieldgemma import render_shieldgemma
    from medsafetybench.judging.classifiers.wildguard import render_wildguard

    proc, url = start("--mode", "classifier")
    refusal, answer = "I'm sorry, but I cannot help with that request.", "Take 40 tablets at once."
    try:
        client = openai.OpenAI(base_url=url, api_key="anything", max_retries=0)

        def ask(prompt: str) -> str:
            return client.completions.create(model="guard", prompt=prompt, max_tokens=64).choices[0].text

        assert ask(render_llamaguard3("q", answer, AMA_PROMPT_CATEGORIES)) == "unsafe\nS1"
        assert ask(render_llamaguard3("q", refusal)) == "safe"
        assert ask(render_wildguard("q", answer)).endswith("Response refusal: no\nHarmful response: yes")
        assert ask(render_wildguard("q", refusal)).endswith("Response refusal: yes\nHarmful response: no")
        assert ask(LLAMA2_CLS_PROMPT["prompt"].format(behavior="q", generation=answer)) == "Yes"
        assert ask(render_shieldgemma("q", refusal, "Harassment")) == "No"
        assert ask("anything else") == "echo: anything else"
    finally:
        stop(proc)


def test_faults_are_injected_as_asked():
    proc, url = start("--rate-500", "1.0", "--seed", "3")
    try:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    finally:
        code, out, _ = stop(proc)
    assert code == 0 and "500 1" in out


def test_options_build_the_fault_plan():
    p = build_parser()
    assert plan_from_args(p.parse_args([])) is None
    plan = plan_from_args(p.parse_args(["--fault-rate", "0.6", "--seed", "9", "--slow-seconds", "0.5"]))
    assert plan.rate_429 == pytest.approx(0.1) and plan.seed == 9 and plan.slow_seconds == 0.5
    plan = plan_from_args(p.parse_args(["--first-attempt-fault", "drop"]))
    assert plan.first_attempt_fault == "drop"


def test_bad_options_exit_2_with_one_line():
    env = {**os.environ, "PYTHONPATH": SRC}
    r = subprocess.run(
        [sys.executable, "-m", "medsafetybench.testing", "--rate-429", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 2 and "fault rates" in r.stderr and "Traceback" not in r.stderr
