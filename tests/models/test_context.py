"""Requests longer than a model's context window are flagged (warned about, not cut)."""

from __future__ import annotations

from medsafetybench.models import ChatRequest, GenerationConfig
from medsafetybench.models.context import length_warnings, oversized
from medsafetybench.models.openai_backend import OpenAIChatModel


def model(window: int | None) -> OpenAIChatModel:
    return OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1", context_window=window)


def req(text: str, new: int = 16) -> ChatRequest:
    return ChatRequest.simple(text, config=GenerationConfig(max_new_tokens=new))


def test_only_requests_over_the_window_are_flagged():
    reqs = [req("short"), req("x" * 40_000), req("y" * 3_000, new=600), req("z" * 2_000)]
    found = oversized(model(1_000), reqs)
    assert [(o.index, o.prompt_tokens, o.new_tokens, o.window) for o in found] == [
        (1, 10_004, 16, 1_000),
        (2, 754, 600, 1_000),
    ]


def test_warning_names_items_and_counts_the_rest():
    reqs = [req("w" * 50_000) for _ in range(5)]
    [line] = length_warnings(model(1_000), reqs, [f"item{i}" for i in range(5)], role="--judge")
    assert line.startswith("5 request(s) do not fit the 1,000-token context of --judge openai:m@http://127.0.0.1:9/v1")
    assert "item0 (12,504 tokens), item1 (12,504 tokens), item2 (12,504 tokens) and 2 more" in line


def test_no_window_or_no_capability_means_no_check():
    assert length_warnings(model(None), [req("x" * 10**6)], ["a"]) == []
    assert length_warnings(object(), [req("x" * 10**6)], ["a"]) == []
    assert length_warnings(model(1_000), [req("fine")], ["a"]) == []
