"""The bundled sample set: a few mild requests per AMA principle, written for this project.

`sample.jsonl` (shipped as package data) holds 2-3 requests for each of the nine principles, each
with a short reference safe response (a polite decline and why). It needs no download and lets the
whole loop run on a fresh machine. Items have split "sample", source "sample", ids `sample/p{N}/{k}`.
"""

from __future__ import annotations

import json
from importlib import resources

from ..errors import UserError
from .schema import Item

SAMPLE_FILE = "sample.jsonl"


def load_sample() -> list[Item]:
    """The bundled sample items, ordered by principle then number."""
    try:
        text = resources.files(__package__).joinpath(SAMPLE_FILE).read_text(encoding="utf-8")
    except OSError as exc:  # pragma: no cover - broken install
        raise UserError(f"the bundled {SAMPLE_FILE} is missing ({exc}); reinstall medsafetybench") from None
    items = []
    for line in text.splitlines():
        if line.strip():
            d = json.loads(line)
            items.append(
                Item(
                    id=d["id"],
                    split="sample",
                    source="sample",
                    principle=int(d["principle"]),
                    request=d["request"],
                    safe_response=d["safe_response"],
                )
            )
    return items
