"""The labelling sample (allocation, seeded draws, stored design) and labels written as `human:` judgements
in a real store: all or nothing, attached to the run, readable by run_rows and summaries."""

from __future__ import annotations

import pytest

from helpers.fixtures_report import JUDGE, build_store, items
from medsafetybench.errors import UserError
from medsafetybench.evaluation.pipeline import summarise_run
from medsafetybench.judging.base import JudgeCase
from medsafetybench.labels.sample import (
    allocate,
    draw,
    draw_sample,
    get_sample,
    human_identity,
    put_labels,
    run_labels,
    run_samples,
    sample_for,
)

SIZES = {"1|gpt4": 50, "1|llama2": 10, "2|gpt4": 50, "2|llama2": 3, "3|gpt4": 7}


def test_allocate_is_proportional_with_one_per_stratum():
    alloc = allocate(SIZES, 24)
    assert sum(alloc.values()) == 24 and min(alloc.values()) >= 1
    assert alloc == {"1|gpt4": 10, "1|llama2": 2, "2|gpt4": 10, "2|llama2": 1, "3|gpt4": 1}
    assert allocate(SIZES, 5) == dict.fromkeys(SIZES, 1)
    small = allocate(SIZES, 2)  # fewer labels than strata: the largest strata get one each
    assert small == {"1|gpt4": 1, "1|llama2": 0, "2|gpt4": 1, "2|llama2": 0, "3|gpt4": 0}
    assert allocate(SIZES, 500) == SIZES  # more than the frame: everything
    assert allocate({"a": 2, "b": 100, "c": 0}, 50) == {"a": 1, "b": 49}  # empty strata are left out
    capped = allocate({"a": 1, "b": 1, "c": 40}, 30)  # a stratum never gets more than it has
    assert capped == {"a": 1, "b": 1, "c": 28}


def test_draw_is_seeded_stratified_and_nested():
    frame = [(f"{k}/{i}", k) for k, n in SIZES.items() for i in range(n)]
    d = draw(frame, 24, seed=5)
    assert d == draw(frame, 24, seed=5) and d != draw(frame, 24, seed=6)
    counts = {k: sum(1 for _, s in d if s == k) for k in SIZES}
    assert counts == allocate(SIZES, 24)
    assert all(i.startswith(s) for i, s in d) and len({i for i, _ in d}) == 24
    assert [s for _, s in d] != sorted(s for _, s in d)  # shown in a shuffled order, not stratum by stratum
    bigger = {i for i, _ in draw(frame, 60, seed=5)}  # same seed, larger n: the smaller sample is kept
    assert {i for i, _ in d} <= bigger


def test_sample_is_stored_and_found_again(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    with store:
        s = draw_sample(store, b, 5, seed=1)
        assert len(s.items) == 5 and s.seed == 1 and s.n_requested == 5 and s.design == "stratified-proportional-v1"
        assert sum(v["frame"] for v in s.strata.values()) == 11  # model-b's item 11 has no response
        assert "test/11" not in s.item_ids
        assert draw_sample(store, b, 5, seed=1) == s == get_sample(store, s.id)  # the same draw, same id
        s2 = draw_sample(store, b, 8, seed=1)
        assert [x.id for x in run_samples(store, b)] == [s.id, s2.id]
        with pytest.raises(UserError, match="at least one"):
            draw_sample(store, b, 0)
        store.delete_run(b)  # samples go with their run
        assert run_samples(store, b) == []
        assert store.conn.execute("SELECT COUNT(*) FROM label_sample_items").fetchone()[0] == 0


def test_labels_are_human_judgements(tmp_path):
    store, a, _ = build_store(tmp_path / "proj")
    with store:
        s = draw_sample(store, a, 4, seed=0)
        ann = human_identity("ann")
        assert ann == "human:ann" and human_identity("human:ann") == ann
        n = put_labels(store, a, ann, {s.item_ids[0]: 2, s.item_ids[1]: 5}, via="test")
        assert n == 2 and store.run(a).judges == (JUDGE, ann) and store.run(a).judge_identity == JUDGE
        rows = {r.item_id: r for r in store.run_rows(a, ann)}
        assert rows[s.item_ids[0]].score == 2 and rows[s.item_ids[1]].harmful is True
        assert summarise_run(store, a, judge_identity=ann).overall.n_scored == 2
        # content-keyed like every judgement, with who and when
        it = next(i for i in items() if i.id == s.item_ids[0])
        key = JudgeCase(it.request, rows[it.id].response, it.policy).cache_key(ann)
        judge, created = store.conn.execute(
            "SELECT judge_identity, created_at FROM judgements WHERE key=?", (key,)
        ).fetchone()
        assert judge == ann and created == run_labels(store, a, ann)[it.id].at
        put_labels(store, a, ann, {s.item_ids[0]: 3}, via="test")  # a person may change their mind
        assert run_labels(store, a, ann)[s.item_ids[0]].score == 3
        assert sample_for(store, a, ann).id == s.id


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ({"test/00": 2, "nope": 3}, "item 'nope' is not in run"),
        ({"test/00": 2, "test/01": 6}, "score 6 is not 1-5"),
        ({"test/00": True}, "is not 1-5"),
    ],
)
def test_bad_labels_write_nothing(tmp_path, scores, message):
    store, a, _ = build_store(tmp_path / "proj")
    with store:
        before = store.conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]
        with pytest.raises(UserError, match=message):
            put_labels(store, a, "human:ann", scores, via="test")
        assert store.conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == before
        assert store.run(a).judges == (JUDGE,)


def test_item_without_response_and_unjudged_run_are_refused(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    with store:
        with pytest.raises(UserError, match="no response"):
            put_labels(store, b, "human:ann", {"test/11": 1}, via="test")
        store.conn.execute("DELETE FROM run_judges WHERE run_id=?", (a,))
        with pytest.raises(UserError, match="has no judge yet"):
            put_labels(store, a, "human:ann", {"test/00": 1}, via="test")
    with pytest.raises(UserError, match="--labeller"):
        human_identity("ann smith")
