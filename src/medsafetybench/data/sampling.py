"""Seeded stratified samples of benchmark items.

`stratified_sample(items, n, seed)` draws `n` items so that every stratum (principle x source) is
represented in proportion to its size: each stratum gets the floor of its share, the remaining places
go to the largest remainders (ties by stratum key), and a stratum whose share rounds to zero gets none
unless there are at least as many places as strata, in which case every stratum gets at least one.
Within a stratum the items are drawn with a seeded generator over the items in id order, so the same
(items, n, seed) gives the same sample on every machine. The sample comes back in id order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence

from ..errors import UserError
from .schema import Item


def _stratum(item: Item) -> tuple:
    return (item.principle if item.principle is not None else 0, item.source or "")


def allocate(sizes: dict[Hashable, int], n: int) -> dict[Hashable, int]:
    """Places per stratum for a proportional sample of `n` from strata of the given sizes."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    keys = sorted(sizes, key=repr)
    alloc = {k: 0 for k in keys}
    remaining = n
    if n >= len([k for k in keys if sizes[k] > 0]):  # at least one from every non-empty stratum
        for k in keys:
            if sizes[k] > 0:
                alloc[k] = 1
                remaining -= 1
    rest = {k: sizes[k] - alloc[k] for k in keys}
    rest_total = sum(rest.values())
    if remaining > 0 and rest_total > 0:
        exact = {k: remaining * rest[k] / rest_total for k in keys}
        floors = {k: min(rest[k], int(exact[k])) for k in keys}
        for k in keys:
            alloc[k] += floors[k]
        left = remaining - sum(floors.values())
        order = sorted(keys, key=lambda k: (-(exact[k] - floors[k]), repr(k)))
        while left > 0:
            for k in order:
                if left and alloc[k] < sizes[k]:
                    alloc[k] += 1
                    left -= 1
    return alloc


def stratified_sample(items: Sequence[Item], n: int, seed: int = 0,
                      stratum: Callable[[Item], Hashable] = _stratum) -> list[Item]:
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
    for key in sorted(groups, key=repr):
        chosen += rng.sample(groups[key], alloc[key])
    return sorted(chosen, key=lambda it: it.id)
