"""Seeded stratified sampling of items."""

from __future__ import annotations

from collections import Counter

import pytest

from medsafetybench.data import load_items
from medsafetybench.data.sampling import allocate, stratified_sample
from medsafetybench.data.schema import Item
from medsafetybench.errors import UserError


def _items(sizes: dict[tuple[int, str], int]) -> list[Item]:
    return [
        Item(id=f"x/{src}/p{p}/{i:03d}", split="eval", source=src, principle=p, request=f"r {p} {src} {i}")
        for (p, src), n in sizes.items()
        for i in range(n)
    ]


def test_allocation_is_proportional_and_exact() -> None:
    assert allocate({"a": 50, "b": 30, "c": 20}, 10) == {"a": 5, "b": 3, "c": 2}
    alloc = allocate({"a": 1, "b": 1, "c": 98}, 10)
    assert sum(alloc.values()) == 10 and alloc["a"] == 1 and alloc["b"] == 1  # every stratum once
    assert allocate({"a": 3, "b": 3}, 100) == {"a": 3, "b": 3}
    assert sum(allocate({"a": 7, "b": 11, "c": 13}, 2).values()) == 2  # fewer places than strata


def test_sample_is_stratified_seeded_and_stable() -> None:
    items = _items({(p, s): 50 if s == "gpt4" else 10 + p for p in range(1, 10) for s in ("gpt4", "llama2")})
    a = stratified_sample(items, 90, seed=1)
    assert len(a) == 90 and len({it.id for it in a}) == 90
    counts = Counter((it.principle, it.source) for it in a)
    assert all(counts[(p, "gpt4")] >= 7 for p in range(1, 10))  # 450 of 594 items are gpt4 -> ~68 places
    assert a == stratified_sample(list(reversed(items)), 90, seed=1)  # input order does not matter
    assert a != stratified_sample(items, 90, seed=2)
    assert [it.id for it in a] == sorted(it.id for it in a)


def test_not_the_first_n_ids() -> None:
    items = load_items(split="sample", sample=9, seed=0)
    assert len(items) == 9 and len({it.principle for it in items}) == 9
    assert [it.id for it in load_items(split="sample", limit=9)] != [it.id for it in items]


@pytest.mark.parametrize("bad", [0, -3, True, 2.5])
def test_bad_sample_size(bad) -> None:
    with pytest.raises(UserError, match="--sample"):
        stratified_sample(_items({(1, "gpt4"): 3}), bad)
