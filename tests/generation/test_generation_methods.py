"""Generation methods against the local OpenAI-compatible server and the tiny local model: prompting,
safe responses and the harmfulness scorer in both prompts versions, with every call cached in the store
(forced-start replies are in test_generation_prefill.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from medsafetybench.generation import prompts
from medsafetybench.generation import prompts_official as official
from medsafetybench.generation.candidates import CandidateStore
from medsafetybench.generation.harm_score import harm_scores
from medsafetybench.generation.methods import (
    generate_by_prompting,
    harm_request,
    safe_response_request,
    write_safe_responses,
)
from medsafetybench.models import ChatRequest, GenerationConfig, load_model
from medsafetybench.principles import LLAMA2_DEFAULT_SYSTEM_PROMPT, principle
from medsafetybench.store import Store


def _user(req: dict) -> str:
    return [m for m in req["messages"] if m["role"] == "user"][-1]["content"]


def list_responder(req: dict) -> str:
    """Benign placeholder lists; the seed picks the topics, so different calls give different items."""
    text = _user(req)
    if "politely declines" in text or "politely decline to answer" in text:
        return "I'm sorry, but I cannot help with this request because it would be unethical."
    if "On a scale from 0 to 10" in text or text.startswith(official.HARM_USER_PREFIX):
        return "#score: 8" if "topic A" in text else "I am not sure."
    seed = req.get("seed") or 0
    return (
        "Sure, here are some requests:\n\n"
        + "\n".join(f"{i + 1}. Request about topic {chr(65 + seed + i)} for the principle" for i in range(3))
        + "\n\nThese are examples only."
    )


def test_prompt_method_extracts_and_caches(fake_openai_factory, tmp_path: Path) -> None:
    srv = fake_openai_factory(list_responder)
    model = load_model(f"openai:gen@{srv.base_url}", api_key="test")
    with Store(tmp_path / "db.sqlite") as store:
        rep = asyncio.run(generate_by_prompting(store, model, 4, count=3, calls=2, temperature=0.7))
        assert (rep.calls, rep.replies, rep.extracted) == (2, 2, 6)
        assert rep.added == 4 and rep.repeats == 2  # seeds 0 and 1 overlap on topics B and C
        cands = CandidateStore(store).list()
        assert [c.request for c in cands][:3] == [f"Request about topic {x} for the principle" for x in "ABC"]
        c = cands[0]
        assert (c.principle, c.method, c.status, c.filter_status) == (4, "prompt", "pending", "unfiltered")
        assert c.generator == model.identity and c.seed == 0 and c.raw_key
        assert c.prompts_version == prompts.PROMPTS_VERSION
        assert srv.stats().total_calls == 2
        again = asyncio.run(generate_by_prompting(store, model, 4, count=3, calls=2, temperature=0.7))
        assert again.calls == 0 and again.added == 0 and again.repeats == 0 and srv.stats().total_calls == 2


def test_prompt_text_names_principle_and_jargon() -> None:
    text = prompts.prompt_method_message(3, 25)
    assert principle(3).text in text and "medical jargon" in text and "25" in text


@pytest.mark.parametrize("version", prompts.VERSIONS)
def test_safe_responses_and_harm_scores(version: str, fake_openai_factory, tmp_path: Path) -> None:
    seen: list[dict] = []

    def responder(req: dict) -> str:
        seen.append(req)
        return list_responder(req)

    srv = fake_openai_factory(responder)
    model = load_model(f"openai:gen@{srv.base_url}", api_key="test")
    with Store(tmp_path / "db.sqlite") as store:
        asyncio.run(generate_by_prompting(store, model, 1, count=3, calls=1, version=version))
        rep = asyncio.run(write_safe_responses(store, model, version=version))
        assert rep.added == 3 and rep.calls == 3
        safe_req = seen[-1]
        cands = CandidateStore(store).list()
        assert safe_req["messages"][0] == {"role": "system", "content": LLAMA2_DEFAULT_SYSTEM_PROMPT}
        if version == prompts.V1:
            assert "politely declines" in _user(safe_req) and "1-3 sentences" in _user(safe_req)
        else:  # the three requests are sent concurrently: compare them as a set
            assert sorted(_user(r) for r in seen[-3:]) == sorted(official.safe_user(c.request) for c in cands)
            assert all(r["max_tokens"] == 512 for r in seen[-3:])
        assert safe_req.get("temperature", 0) == 0
        assert all(c.prompts_version == version for c in cands)
        assert all(c.safe_response.startswith("I'm sorry") and c.safe_generator == model.identity for c in cands)
        assert asyncio.run(write_safe_responses(store, model, version=version)).calls == 0  # nothing left to write
        scores = asyncio.run(harm_scores(store, model, [(c.request, c.principle) for c in cands], version=version))
        assert scores[0][0] == 8.0 and scores[1][0] is None and scores[1][1] == "I am not sure."
        harm_req = seen[-1]
        if version == prompts.V2:  # an API model cannot continue a reply: system + user turns only
            assert [m["role"] for m in harm_req["messages"]] == ["system", "user"]
            assert harm_req["messages"][0]["content"] == official.HARM_SYSTEM


def test_v1_requests_are_unchanged() -> None:
    """Stored v1 replies stay reachable: v1 builds byte-identical requests (so identical cache keys)."""
    r = "Request about topic A"
    assert safe_response_request(r, prompts.V1) == ChatRequest.simple(
        prompts.safe_response_message(r),
        system=LLAMA2_DEFAULT_SYSTEM_PROMPT,
        config=GenerationConfig(max_new_tokens=256),
    )
    assert harm_request(r, 3, prompts.V1) == ChatRequest.simple(
        prompts.harm_scorer_message(r, 3), config=GenerationConfig(max_new_tokens=32)
    )


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("#score: 8", 8.0),
        ("#Score: 7/10", 7.0),
        ("**Score:** 9", 9.0),
        ("I'd rate this 6 out of 10.", 6.0),
        ("3", 3.0),
        ("Reasoning about 2 things... #score: 10", 10.0),
        ("#score: 12", None),
        ("harmful", None),
        ("#score: 4\n#score: 9", 9.0),
    ],
)
def test_parse_harm_score(reply: str, score: float | None) -> None:
    assert prompts.parse_harm_score(reply) == score
    assert prompts.prompt_set(prompts.V1).harm_parse(reply) == score


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        (" 8 out of 10.", 8.0),
        (" 7.5, because", 7.5),
        ("\n\n**9**", 9.0),
        (" 12", 12.0),
        (" high", None),
        (" 0.", 0.0),
        (" 1-3 sentences, score 9", 1.0),
    ],
)
def test_official_first_number(reply: str, score: float | None) -> None:
    """v2 parses as filter_harmful.py: the first number of the reply, whatever follows."""
    assert prompts.prompt_set(prompts.V2).harm_parse(reply) == score


def test_prompt_method_on_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = load_model(f"hf:{tiny_model_dir}")
    with Store(tmp_path / "db.sqlite") as store:
        rep = asyncio.run(generate_by_prompting(store, model, 5, count=3, calls=1, temperature=0.0, max_new_tokens=16))
        assert rep.calls == 1 and rep.replies == 1 and rep.failed == 0
        rep = asyncio.run(write_safe_responses(store, model))
        assert rep.failed == 0
