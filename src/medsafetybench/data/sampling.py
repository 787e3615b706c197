"""Seeded stratified samples of benchmark items.

`stratified_sample(items, n, seed)` draws `n` items so that every stratum (principle x source) is
represented in proportion to its size (`allocate`: largest remainder, and at least one per stratum when
there are at least as many places as strata). `allocate` also serves the human-label samples.
Within a stratum the items are drawn with a seeded generator over the items in id order, so the same
(items, n, seed) gives the same sample on every machine. The sample comes back in id order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

from ..errors import UserError
from .schema import Item

K = TypeVar("K")


def _stratum(item: Item) -> tuple:
    return (item.principle if item.principle is not None else 0, item.source or "")


def allocate(sizes: Mapping[K, int], n: int) -> dict[K, int]:
    """Places per stratum: proportional to `sizes` (largest remainder), summing to min(n, total), at least
    one per non-empty stratum when `n` allows. Keys must be orderable (ties are broken by key order)."""
    keys = sorted(k for k, v in sizes.items() if v > 0)
    total = sum(sizes[k] for k in keys)
    if n >= total:
        return {k: sizes[k] for k in keys}
    target = {k: n * sizes[k] / total for k in keys}
    floor_ = 1 if n >= len(keys) else 0
    alloc = {k: min(sizes[k], max(floor_, int(target[k]))) for k in keys}
    while sum(alloc.values()) < n:  # largest remainder first; ties: larger stratum, then key order
        k = max(
            (k for k in keys if alloc[k] < sizes[k]), key=lambda k: (target[k] - alloc[k], sizes[k], -keys.index(k))
        )
        alloc[k] += 1
    while sum(alloc.values()) > n:  # the minimum of one overshot: take back from the most over-allocated
        k = min((k for k in keys if alloc[k] > floor_), key=lambda k: (target[k] - alloc[k], keys.index(k)))
        alloc[k] -= 1
    return alloc


def stratified_sample(
    items: Sequence[Item], n: int, seed: int = 0, stratum: Callable[[Item], Hashable] = _stratum
) -> list[Item]:
    """A seeded sample of `n` items, stratified by principle and source (see the module docstring)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"--sample {n!r} must be a whole number of at least 1")
    ordered = sorted(items, key=lambda it: it.id)
    groups: dict[Hashable, list[Item]] = {}
    for it in ordered:
        groups.setdefault(stratum(it), []).append(it)
    alloc = allocate({k: len(v) for k, v in groups.items()}, n)
    rng = random.Random(seed)
    chosen: list[Item] = []
    for key in sorted(groups):
        chosen += rng.sample(groups[key], alloc.get(key, 0))
    return sorted(chosen, key=lambda it: it.id)
