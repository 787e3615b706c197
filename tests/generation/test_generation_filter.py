"""Filters: near duplicates found on real near-duplicate pairs of the release (MiniLM), exact duplicates
after light edits, blockwise similarity equal to the full matrix, length/language checks, harm pre-screen."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.paths import SHARED
from medsafetybench.generation.candidates import Candidate
from medsafetybench.generation.filter import (
    Embedder,
    FilterSettings,
    filter_candidates,
    language_problem,
    length_problem,
    max_similarity,
    normalise,
)

DATA = SHARED / "data" / "med-safety-bench"

# Near-duplicate pairs in the release (found with this filter): the same request reworded slightly.
PAIRS = [
    ("eval/llama2/p8/016", "improve/llama2/p8/057"),
    ("eval/llama2/p4/055", "eval/llama2/p4/034"),
    ("eval/llama2/p7/047", "eval/llama2/p7/035"),
]


def cand(cid: str, request: str, principle: int = 1) -> Candidate:
    return Candidate(
        id=cid,
        principle=principle,
        request=request,
        method="prompt",
        generator="test",
        seed=None,
        suffix=None,
        prompts_version="v",
        raw_key=None,
        times_seen=1,
        safe_response=None,
        safe_generator=None,
        filter_status="unfiltered",
    )


@pytest.fixture(scope="module")
def bench():
    if not (DATA / "datasets").is_dir():
        pytest.skip(f"shared benchmark data not found at {DATA}")
    from medsafetybench.data import load_official

    items = load_official("eval", sources=["llama2"], principles=[4, 7, 8], data_dir=DATA) + load_official(
        "improve", sources=["llama2"], principles=[8], data_dir=DATA
    )
    return {it.id: it for it in items}


@pytest.fixture(scope="module")
def embed():
    pytest.importorskip("sentence_transformers")
    return Embedder()


def test_max_similarity_blocks_equal_full_matrix() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(37, 8)).astype(np.float32)
    b = rng.normal(size=(23, 8)).astype(np.float32)
    full = a @ b.T
    best, idx = max_similarity(a, b, block=5, top=3)
    np.testing.assert_allclose(best, -np.sort(-full, axis=1)[:, :3], rtol=1e-5)
    # the indices point at the same similarities (blocked and full matmuls may round differently)
    np.testing.assert_allclose(np.take_along_axis(full, idx, axis=1), best, rtol=1e-5)
    self_sim = a @ a.T
    best, idx = max_similarity(a, a, causal=True, block=4)
    assert idx[0, 0] == -1 and np.isneginf(best[0, 0])
    for j in range(1, len(a)):
        assert idx[j, 0] == int(np.argmax(self_sim[j, :j])) and idx[j, 0] < j


def test_near_duplicates_of_the_benchmark_and_within_the_set(bench, embed) -> None:
    reference = [bench[b] for _, b in PAIRS[:1]] + [bench["eval/llama2/p4/001"]]
    cands = [
        cand("c1", bench[PAIRS[0][0]].request),  # near duplicate of the reference improve item
        cand("c2", bench[PAIRS[1][0]].request),  # kept (first of a near-duplicate pair)
        cand("c3", bench[PAIRS[1][1]].request),  # near duplicate of c2
        cand("c4", bench[PAIRS[2][0]].request),
        cand("c5", bench["eval/llama2/p4/001"].request.upper() + " !"),  # lightly edited copy: exact
        cand("c6", "Request about topic A, written for a test of the filter, with enough words."),
        cand("c7", bench[PAIRS[2][1]].request),
    ]
    results = {
        r.id: r for r in filter_candidates(cands, reference, embed=embed, settings=FilterSettings(threshold=0.95))
    }
    assert results["c1"].status == "dropped"
    assert any(PAIRS[0][1] in r and "near duplicate of benchmark" in r for r in results["c1"].reasons)
    assert results["c2"].status == "kept" and results["c4"].status == "kept" and results["c6"].status == "kept"
    assert results["c3"].reasons == [r for r in results["c3"].reasons if "near duplicate of candidate c2" in r] != []
    assert any("near duplicate of candidate c4" in r for r in results["c7"].reasons)
    assert results["c5"].reasons[0] == "exact duplicate of benchmark item eval/llama2/p4/001"
    nearest = results["c2"].scores["nearest"]
    assert len(nearest) == 2 and nearest[0]["cosine"] >= nearest[1]["cosine"]
    # a stricter threshold keeps the reworded pairs apart
    strict = {
        r.id: r for r in filter_candidates(cands, reference, embed=embed, settings=FilterSettings(threshold=0.9999))
    }
    assert strict["c3"].status == "kept" and strict["c5"].status == "dropped"


def test_checks_without_embeddings_and_harm_prescreen() -> None:
    cands = [
        cand("a", "Request about topic A, long enough to pass the length check."),
        cand("b", "Too short."),
        cand("c", "Запрос о теме А, который написан не на английском языке вовсе."),
        cand("d", "request about topic a long enough to pass the length check"),  # exact dup of a
        cand("e", "Request about topic E, long enough to pass the length check."),
        cand("f", "Request about topic F, long enough to pass the length check."),
        cand("g", "Request about topic G, long enough to pass the length check."),
    ]
    asked = []

    def scorer(items):
        asked.extend(items)
        return [(9.0, "#score: 9"), (3.0, "#score: 3"), (None, "no idea"), (None, None)]

    res = {r.id: r for r in filter_candidates(cands, [], embed=None, scorer=scorer)}
    assert [t for t, _ in asked] == [cands[i].request for i in (0, 4, 5, 6)]  # only what passed the cheap checks
    assert res["a"].status == "kept" and res["a"].scores["harm"] == 9.0
    assert res["b"].reasons == ["too short (2 words < 6)"]
    assert res["c"].status == "dropped" and "not English" in res["c"].reasons[0]
    assert res["d"].reasons == ["exact duplicate of candidate a"]
    assert res["e"].reasons == ["harmfulness 3 < 7"]
    assert res["f"].status == "kept" and res["f"].scores["harm_note"].startswith("unscored")
    assert res["g"].status == "kept" and "failed" in res["g"].scores["harm_note"]


def test_simple_checks() -> None:
    assert normalise("  How CAN I, do this?") == "how can i do this"
    assert length_problem("one two three") == "too short (3 words < 6)"
    assert length_problem(" ".join(["w"] * 200)) == "too long (200 words > 150)"
    assert language_problem("How can I write a request about topic A for the test?") is None
    assert "not English prose" in language_problem("Lorem ipsum dolor sit amet consectetur adipiscing elit sed")


def test_embedding_is_deterministic_and_unit(embed) -> None:
    a = embed(["Request about topic A", "Request about topic B"])
    assert a.shape == (2, 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(embed(["Request about topic A"])[0], a[0], rtol=1e-5, atol=1e-6)


def test_embeddings_cached_in_the_store(tmp_path) -> None:
    from medsafetybench.generation.filter import CachedEmbeddings
    from medsafetybench.store import Store

    asked: list[str] = []

    def fake_embed(texts):
        asked.extend(texts)
        return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)

    with Store(tmp_path / "db.sqlite") as store:
        emb = CachedEmbeddings(store, fake_embed)
        first = emb(["Request about topic A", "Request B", "Request about topic A"])
        assert asked == ["Request about topic A", "Request B"] and first.shape == (3, 2)
        again = emb(["Request B", "Request about topic A", "Request C"])
        assert asked[2:] == ["Request C"]
        np.testing.assert_array_equal(again[:2], first[[1, 0]])
