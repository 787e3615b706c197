"""Forced-start replies on the tiny local model: the reply begins with the version's start ("Sure," in
v1, "Sure!" in v2), the official literal Llama-3 rendering, caching, and the local v2 pre-screen whose
reply is forced to begin "I would assign a harmfulness score of"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from medsafetybench.errors import UserError
from medsafetybench.generation import prompts
from medsafetybench.generation import prompts_official as official
from medsafetybench.generation.candidates import CandidateStore
from medsafetybench.generation.harm_score import harm_scorer_identity, harm_scores
from medsafetybench.generation.prefill import (
    generate_by_prefill,
    prefill_prompt_ids,
    prefill_request,
    resolve_render,
)
from medsafetybench.models import GenerationConfig, load_model
from medsafetybench.principles import principle
from medsafetybench.store import Store

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(f"hf:{tiny_model_dir}")


def test_v1_prefill_on_tiny_model(tiny, tmp_path: Path) -> None:
    req = prefill_request(2, 5, GenerationConfig(max_new_tokens=24), version=prompts.V1)
    text = tiny.tokenizer.decode(prefill_prompt_ids(tiny, req))
    assert text.rstrip().endswith("<|assistant|>\nSure,")  # the reply is forced to begin with "Sure,"
    assert prompts.PREFILL_SYSTEM_PROMPT in text and principle(2).text in text
    with Store(tmp_path / "db.sqlite") as store:
        kw = dict(count=5, calls=2, temperature=0.9, max_new_tokens=24, version=prompts.V1)
        rep = asyncio.run(generate_by_prefill(store, tiny, 2, **kw))
        assert rep.calls == 2 and rep.replies == 2 and rep.failed == 0
        raws = [r[0] for r in store.conn.execute("SELECT text FROM responses")]
        assert len(raws) == 2 and all(r.startswith("Sure,") for r in raws)
        assert asyncio.run(generate_by_prefill(store, tiny, 2, **kw)).calls == 0
        for c in CandidateStore(store).list():  # whatever the tiny model listed is recorded with provenance
            assert c.method == "prefill" and c.generator.endswith("|prefill") and c.seed in (0, 1)


def test_v2_prefill_official_goal_and_start(tiny, tmp_path: Path) -> None:
    goal, _ = official.official_goal(4, "prompts")
    req = prefill_request(4, None, GenerationConfig(max_new_tokens=8))
    assert [m.content for m in req.messages] == [official.PREFILL_SYSTEM, goal, "Sure!"]
    # the model's own format (the tiny tokenizer is no Llama-3 one, so auto picks it)
    assert resolve_render(tiny, "auto", prompts.V2) == "model" and resolve_render(tiny, "auto", prompts.V1) == "model"
    assert tiny.tokenizer.decode(prefill_prompt_ids(tiny, req, "model")).rstrip().endswith("<|assistant|>\nSure!")
    # the official literal Llama-3 text, tokenised without added special tokens
    ids = prefill_prompt_ids(tiny, req, "llama3")
    assert (
        ids
        == tiny.tokenizer(official.llama3_literal(official.PREFILL_SYSTEM, goal, "Sure!"), add_special_tokens=False)[
            "input_ids"
        ]
    )
    with Store(tmp_path / "db.sqlite") as store:
        rep = asyncio.run(generate_by_prefill(store, tiny, 4, calls=2, max_new_tokens=16, render="llama3"))
        assert rep.calls == 2 and rep.failed == 0
        rows = store.conn.execute("SELECT model_identity, request, text FROM responses").fetchall()
        assert all(r[0].endswith("|prefill:llama3") and r[2].startswith("Sure!") for r in rows)
        assert all('"temperature": 0.6' in r[1] and '"top_p": 0.9' in r[1] for r in rows)  # the official run's sampling
    with pytest.raises(UserError, match="twenty"):
        prefill_request(4, 5, GenerationConfig())


def test_v2_prefill_goals_file(tiny, tmp_path: Path) -> None:
    goals = tmp_path / "goals.jsonl"
    goals.write_text(
        '{"goal": "Goal one {x} \\"q\\"", "target": "T1"}\n{"goal": " Goal two é ", "target": ""}\n', encoding="utf-8"
    )
    req = prefill_request(2, None, GenerationConfig(), goals_file=goals)
    assert req.messages[1].content == " Goal two é "  # row i is for principle i, verbatim
    with pytest.raises(UserError, match="principle 3 needs row 3"):
        prefill_request(3, None, GenerationConfig(), goals_file=goals)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"target": "x"}\n', encoding="utf-8")
    with pytest.raises(UserError, match="row 1 has no text 'goal'"):
        prefill_request(1, None, GenerationConfig(), goals_file=bad)


def test_local_v2_prescreen_forces_the_start(tiny, tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        items = [("Request about topic A", 1), ("Request about topic B", 2)]
        got = asyncio.run(harm_scores(store, tiny, items, render="llama3"))
        assert len(got) == 2 and all(raw is not None for _, raw in got)
        for score, raw in got:  # the parsed score is the first number of the continuation (or unscored)
            assert score == official.parse_first_number(raw)
        (req,) = store.conn.execute("SELECT request FROM responses LIMIT 1").fetchone()
        assert official.HARM_START in req and official.HARM_SYSTEM in req
        assert harm_scorer_identity(tiny, prompts.V2, "llama3").endswith("|prefill:llama3|msb-gen-v2")
        assert asyncio.run(harm_scores(store, tiny, items, render="llama3")) == got  # cached
