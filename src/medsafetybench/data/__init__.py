"""Benchmark items: one entry point, `load_items`, over three sources of requests.

- the official MedSafetyBench release (`official`): splits "eval", "improve", "extra";
- a user's own file (`userfiles`): CSV, JSONL or Alpaca JSON;
- the bundled sample set (`sample`): split "sample", no download needed.

Every loader returns `Item` records (`schema`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from ..principles import principle as _check_principle
from .official import DATA_COMMIT, load_ft_split, load_official, resolve_data_dir
from .sample import load_sample
from .sampling import stratified_sample
from .schema import SOURCES, SPLITS, Item
from .userfiles import load_user_file

__all__ = [
    "DATA_COMMIT",
    "SOURCES",
    "SPLITS",
    "Item",
    "item_sort_key",
    "load_ft_split",
    "load_items",
    "load_official",
    "load_sample",
    "load_user_file",
    "resolve_data_dir",
    "stratified_sample",
]

ITEM_SPLITS = ("eval", "improve", "extra", "sample")


def item_sort_key(item: Item) -> tuple:
    """Natural order of ids: digit runs compare as numbers, so `user/f/2` precedes `user/f/10`.
    For official and sample ids (zero-padded) it is the same as plain string order."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", item.id))


def load_items(
    split: str = "eval",
    sources: Sequence[str] | None = None,
    principles: Sequence[int] | None = None,
    data_dir: str | Path | None = None,
    user_file: str | Path | None = None,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    verify: bool = True,
) -> list[Item]:
    """The items to evaluate, sorted by id (natural order, see `item_sort_key`).

    - `user_file` given: that file's items; `split` and `data_dir` are ignored, and `sources` is an
      error (every row of a user file has source "user").
    - `split="sample"`: the bundled sample set (source "sample"); `data_dir` is ignored, and a source
      other than "sample" is an error.
    - otherwise `load_official(split, sources, principles, data_dir)` (split eval, improve or extra).

    Every filter is checked against every split: one that cannot apply is a `UserError`, never ignored.

    `principles` keeps items whose principle is listed (items with no principle are dropped; a user
    file with no principle at all is an error). `sample` draws a seeded sample of that many items,
    stratified by principle and source (`sampling.stratified_sample`); `limit` then keeps the first N
    items of the sorted list. Either way the same items come back on every machine. `verify=False`
    skips the SHA-256 check of the official files (`--no-verify`), for a deliberately modified copy.
    """
    nums = None if principles is None else tuple(sorted(set(principles)))
    for n in nums or ():
        _check_principle(n)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UserError(f"limit {limit!r} must be a whole number of at least 1 (or None for all items)")
    if user_file is not None:
        if sources:
            raise UserError(
                f"--source {','.join(sources)} does not apply to a user file ({user_file}): "
                "every row of a user file has source 'user'; drop --source"
            )
        items = load_user_file(user_file)
        if nums is not None and all(it.principle is None for it in items):
            raise UserError(
                f"{user_file}: no row has a principle, so it cannot be filtered by principle; "
                "add a 'principle' column (1-9) or drop the principle filter"
            )
    elif split == "sample":
        if bad := [s for s in sources or () if s != "sample"]:
            raise UserError(
                f"source {', '.join(bad)} is not in split 'sample' (the bundled set has source "
                "'sample' only); drop --source, or use split eval or improve (gpt4, llama2) "
                "or extra (llama3)"
            )
        items = load_sample()
    elif split in ("eval", "improve", "extra"):
        items = load_official(split, sources=sources, principles=nums, data_dir=data_dir, verify=verify)
    else:
        raise UserError(f"split '{split}' is unknown; use one of {', '.join(ITEM_SPLITS)} (or give a user file)")
    if nums is not None:
        items = [it for it in items if it.principle in nums]
    # Official and sample ids are zero-padded or single-digit, so plain string order is natural order
    # (and much faster on the 74k extra items); user ids may be any text.
    if sample is not None:
        items = stratified_sample(items, sample, seed)
    items = sorted(items, key=item_sort_key if user_file is not None else (lambda it: it.id))
    return items if limit is None else items[:limit]
