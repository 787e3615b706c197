"""Optional capabilities: the log-prob record and helpers, and Protocol checks with isinstance."""

from __future__ import annotations

import math

import pytest

from medsafetybench.models import (
    SupportsConnectionKey,
    SupportsContextLength,
    SupportsLogprobs,
    TokenLogprobs,
)
from medsafetybench.models.capabilities import candidate_logprobs, logsumexp


def test_candidates_sum_every_token_spelling_them():
    pairs = [("unsafe", math.log(0.6)), (" unsafe", math.log(0.2)), ("safe", math.log(0.1)), ("\n", math.log(0.05))]
    got = candidate_logprobs(pairs, ["unsafe", " safe ", "maybe"])
    assert math.exp(got["unsafe"]) == pytest.approx(0.8)
    assert math.exp(got[" safe "]) == pytest.approx(0.1)
    assert got["maybe"] is None


def test_logsumexp_edges():
    assert logsumexp([]) is None
    assert logsumexp([-math.inf, -math.inf]) == -math.inf
    assert logsumexp([math.log(0.25)] * 4) == pytest.approx(0.0)


def test_token_logprobs_record():
    t = TokenLogprobs(top=(("unsafe", math.log(0.9)),), candidates={"unsafe": math.log(0.9), "safe": None})
    assert t.ok and t.probability("unsafe") == pytest.approx(0.9) and t.probability("safe") is None
    assert not TokenLogprobs(error="HTTP 500").ok


def test_protocols_are_checked_by_shape():
    class Plain:
        identity = "plain"

    class Remote:
        def connection_key(self) -> str:
            return "k"

    assert not isinstance(Plain(), SupportsLogprobs | SupportsContextLength | SupportsConnectionKey)
    assert isinstance(Remote(), SupportsConnectionKey)
