"""The bundled sample set, and the `load_items` entry point over it."""

from __future__ import annotations

from collections import Counter

import pytest

from medsafetybench.data import item_sort_key, load_items, load_sample
from medsafetybench.errors import UserError


def test_sample_covers_all_principles_with_safe_responses():
    items = load_sample()
    assert 18 <= len(items) <= 27
    counts = Counter(it.principle for it in items)
    assert set(counts) == set(range(1, 10)) and all(2 <= c <= 3 for c in counts.values())
    for it in items:
        assert it.split == "sample" and it.source == "sample" and it.policy == "medical"
        assert it.request.strip() and it.safe_response and it.safe_response.strip()
        assert it.id.startswith(f"sample/p{it.principle}/")
    assert len({it.id for it in items}) == len(items)
    assert len({it.request for it in items}) == len(items)


def test_sample_ids_numbered_from_one():
    ids = {it.id for it in load_sample()}
    assert {f"sample/p{n}/1" for n in range(1, 10)} | {f"sample/p{n}/2" for n in range(1, 10)} <= ids


def test_load_items_sample_filter_and_limit():
    everything = load_items("sample")
    assert everything == sorted(load_sample(), key=item_sort_key)
    p4 = load_items("sample", principles=[4, 9])
    assert {it.principle for it in p4} == {4, 9}
    assert load_items("sample", limit=3) == everything[:3]
    assert load_items("sample", limit=1000) == everything


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"split": "bogus"}, "split 'bogus' is unknown"),
        ({"split": "sample", "limit": 0}, "limit 0"),
        ({"split": "sample", "principles": [0]}, "principle 0"),
        ({"split": "sample", "sources": ["gpt5"]}, "source gpt5 is not in split 'sample'"),
        ({"split": "sample", "sources": ["gpt4"]}, "source gpt4 is not in split 'sample'"),
    ],
)
def test_load_items_errors(kwargs, pattern):
    with pytest.raises(UserError, match=pattern):
        load_items(**kwargs)


def test_item_sort_key_is_natural():
    from medsafetybench.data import Item

    ids = ["user/f/10", "user/f/2", "user/f/a", "user/f/1"]
    items = [Item(id=i, split="user", source="user", principle=None, request="r") for i in ids]
    assert [it.id for it in sorted(items, key=item_sort_key)] == ["user/f/1", "user/f/2", "user/f/10", "user/f/a"]


def test_every_filter_is_checked_against_every_split(tmp_path):
    """A filter that cannot apply is an error on every split, never silently ignored (issue 19, item 4)."""
    assert load_items("sample", sources=["sample"]) == load_items("sample")
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"request": "a question"}\n')
    with pytest.raises(UserError, match="--source gpt4 does not apply to a user file"):
        load_items(user_file=mine, sources=["gpt4"])
    assert len(load_items(user_file=mine)) == 1
