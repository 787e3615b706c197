"""Tests for medsafetybench.judging.offline.fingerprints: what counts as a training row, and the file format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medsafetybench.errors import UserError
from medsafetybench.judging.offline.fingerprints import (
    MIN_RESPONSE_WORDS,
    TrainedJudge,
    TrainingFingerprints,
    normalise,
    pair_fingerprint,
    response_fingerprint,
)

LONG = " ".join(f"word{i}" for i in range(MIN_RESPONSE_WORDS + 5))


def test_normalisation_ignores_case_width_and_spacing() -> None:
    assert normalise("  Ｈello\u00a0 WORLD\n") == "hello world"
    assert pair_fingerprint("How?", "I can't.") == pair_fingerprint(" how? ", "I CAN'T.")
    assert pair_fingerprint("a", "b c") != pair_fingerprint("a b", "c")  # the separator keeps parts apart
    assert response_fingerprint("short answer") is None
    assert response_fingerprint(LONG) == response_fingerprint(LONG.upper())


def test_contains_pairs_and_long_responses_only() -> None:
    fp = TrainingFingerprints.from_pairs([("How do I X?", "I'm sorry, I can't help."), ("Q", LONG)])
    assert len(fp) == 2 and fp.pairs.dtype == np.uint64 and list(fp.pairs) == sorted(fp.pairs)
    assert fp.contains("how do i x?", "I'm sorry, I can't help.")
    assert not fp.contains("Another request", "I'm sorry, I can't help.")  # short: pair only
    assert fp.contains("the same answer under a request composed differently", LONG)  # long: response alone
    assert fp.mask([("Q", LONG), ("Q", "other")]) == [True, False]
    assert not TrainingFingerprints.from_pairs([]).contains("Q", LONG)


def test_file_round_trip_and_errors(tmp_path: Path) -> None:
    fp = TrainingFingerprints.from_pairs([("a", "b"), ("c", LONG)])
    fp.save(tmp_path / "f")
    back = TrainingFingerprints.load(tmp_path / "f")
    assert np.array_equal(back.pairs, fp.pairs) and np.array_equal(back.responses, fp.responses)
    with pytest.raises(UserError, match="missing"):
        TrainingFingerprints.load(tmp_path / "missing")
    (tmp_path / "bad").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="bad"):
        TrainingFingerprints.load(tmp_path / "bad")


def test_trained_judge_protocol() -> None:
    class J:
        identity = "x"
        trained_on = TrainingFingerprints.from_pairs([])

    class K:
        identity = "y"

    assert isinstance(J(), TrainedJudge) and not isinstance(K(), TrainedJudge)
