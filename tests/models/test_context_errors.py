"""A request the server rejects as longer than its context window (a deterministic HTTP 400) is not
reported as "re-run to retry": the message says what to change, and when the server states its window
(vLLM's `max_model_len` in /v1/models) the run warns before sending. Real HTTP to the fake server."""

from __future__ import annotations

from helpers.cli import run_main
from medsafetybench.testing import Reject

WINDOW = 300


def _vllm_like(request: dict) -> str:
    """Rejects what vLLM rejects: prompt + max_tokens over the window (tokens are words here)."""
    prompt = sum(len(str(m.get("content", "")).split()) for m in request["messages"])
    if prompt + int(request.get("max_tokens") or 0) > WINDOW:
        raise Reject(
            400,
            f"This model's maximum context length is {WINDOW} tokens. However, you requested "
            f"{prompt + request['max_tokens']} tokens. Please reduce the length of the messages.",
        )
    return "Please speak with a licensed clinician."


def test_a_prompt_over_the_window_says_what_to_change(tmp_path, fake_openai_factory, capsys):
    model = fake_openai_factory(_vllm_like, max_model_len=WINDOW, models=("m",))
    judge = ["--judge", f"openai:j@{fake_openai_factory(lambda r: '#score: 1').base_url}"]
    code = run_main(
        "eval",
        "--model",
        f"openai:m@{model.base_url}",
        "--split",
        "sample",
        "--limit",
        "3",
        "--project",
        str(tmp_path),
        *judge,
    )
    assert code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"do not fit the {WINDOW}-token context" in err  # warned before sending: the server said its window
    assert "re-run the same command" not in err
    assert "--max-new-tokens" in err and "--context-window" in err
    assert model.stats().total_calls == 3  # a 400 is not retried

    assert (
        run_main(
            "eval",
            "--model",
            f"openai:m@{model.base_url}",
            "--split",
            "sample",
            "--limit",
            "3",
            "--max-new-tokens",
            "64",
            "--project",
            str(tmp_path),
            *judge,
        )
        == 0
    )  # the advice works
