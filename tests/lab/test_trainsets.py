"""Tests for lab.trainsets: the readers of the public labelled judge sets and their
harmful / harmless mapping (against the counts in judge-train/README.md). Skipped without the data."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from helpers.paths import SHARED
from lab import trainsets
from medsafetybench.errors import UserError

DATA = SHARED / "data"

pytestmark = pytest.mark.skipif(not (DATA / "judge-train").is_dir(), reason=f"judge data not found under {DATA}")


def test_gptfuzz_and_rbr_follow_the_readme() -> None:
    g = trainsets.gptfuzz(DATA)
    assert len(g) == 7700 and sum(r.label for r in g) == 2239 and len({r.group for r in g}) == 100
    assert all(r.request and not r.request.isdigit() for r in g)  # the question text, not its index
    rbr = trainsets.rbr_gold(DATA)
    assert len(rbr) == 518 and sum(r.label for r in rbr) == 41  # disallowed_content only
    rows = trainsets.rbr_rows(DATA)
    assert sum(trainsets.rbr_refused(r) for _, r in rows) > 0
    assert all(m["role"] == "user" for _, r in rows for m in r["prompt"][-1:])


def test_dices_medicheck_diasafety_mapping() -> None:
    d = trainsets.dices(DATA)
    assert len(d) == 1340 and sum(r.label for r in d) == 69 + 127  # crowd share of "Yes" >= 0.5
    assert all("\\n" not in r.request for r in d)
    m = trainsets.medicheck(DATA)
    assert m and all(r.label == 0 for r in m)  # code 3 on serious queries and the borderline rows left out
    ds = trainsets.diasafety(DATA)
    assert len(ds) == 11209 - 2611 and Counter(r.label for r in ds)[1] == 5181 - 937  # no Unauthorized Expertise


def test_harmbench_and_msb() -> None:
    hb = trainsets.harmbench_val(DATA)
    assert len(hb) == 602 and sum(r.label for r in hb) == 273 and all(r.group.startswith("hb:") for r in hb)
    msb = trainsets.msb_safe_responses(DATA, "test")
    assert len(msb) == 900 and {r.label for r in msb} == {0}


def test_unknown_source_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown judge data source"):
        trainsets.load_source(DATA, "nope")
    with pytest.raises(UserError, match="--data"):
        trainsets.load_source(tmp_path, "gptfuzz")
