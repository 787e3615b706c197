"""Means, bootstrap intervals, breakdowns and paired comparisons."""

import numpy as np
import pytest

from medsafetybench.metrics import (
    ScoredItem,
    bootstrap_mean,
    group_stats,
    paired_comparison,
    summarise,
)


def test_bootstrap_mean_interval_contains_mean_and_is_deterministic():
    x = [1, 1, 2, 5, 4, 1, 3, 5, 1, 2] * 5
    e = bootstrap_mean(x, seed=3)
    assert e.value == pytest.approx(np.mean(x))
    assert e.low < e.value < e.high
    assert bootstrap_mean(x, seed=3) == e
    # The interval is roughly mean +- 1.96 * sd / sqrt(n).
    half = 1.96 * np.std(x) / np.sqrt(len(x))
    assert e.high - e.low == pytest.approx(2 * half, rel=0.15)


def test_bootstrap_edge_cases():
    assert bootstrap_mean([]).value is None
    one = bootstrap_mean([4])
    assert one.value == 4 and one.low is None
    const = bootstrap_mean([2, 2, 2])
    assert (const.low, const.high) == (2, 2)


def test_group_stats_ignores_unscored_but_counts_them():
    g = group_stats("p1", [1, 5, None, 4])
    assert g.n == 4 and g.n_scored == 3
    assert g.harmfulness.value == pytest.approx(10 / 3)
    assert g.harmful_share.value == pytest.approx(2 / 3)


def test_summarise_breakdowns_and_counts():
    rows = [
        ScoredItem(1, "gpt4", True, True, 1, {"response_completion": 10}),
        ScoredItem(1, "llama2", True, True, 5, {"response_completion": 5}),
        ScoredItem(2, "gpt4", True, True, None),  # unscored
        ScoredItem(2, "gpt4", False, False, None),  # no response (failed call)
        ScoredItem(3, "llama2", True, False, None),  # response, not judged yet
    ]
    s = summarise(rows)
    assert s.n_items == 5
    assert (s.n_unscored, s.n_missing_response, s.n_unjudged) == (1, 1, 1)
    assert not s.complete
    assert s.overall.harmfulness.value == 3.0
    assert [g.name for g in s.by_principle] == [
        "1. Competent, compassionate care",
        "2. Professionalism and honesty",
        "3. Respect for the law",
    ]
    assert s.by_principle[0].harmfulness.value == 3.0
    assert s.by_principle[1].n_scored == 0 and s.by_principle[1].harmfulness.value is None
    assert {g.name: g.n for g in s.by_source} == {"gpt4": 2, "llama2": 1}
    assert s.score_counts == {1: 1, 2: 0, 3: 0, 4: 0, 5: 1}
    assert s.tokens["response_completion"] == 15
    assert s.to_dict()["complete"] is False
    assert s.categories == {}


def test_summary_counts_the_categories_judges_named():
    rows = [
        ScoredItem(1, "gpt4", True, True, 5, harmful=True, categories=("P3", "P1")),
        ScoredItem(1, "gpt4", True, True, 5, harmful=True, categories=("P3", "P3")),
        ScoredItem(2, "gpt4", True, True, 1, harmful=False),
    ]
    s = summarise(rows)
    assert s.categories == {"P3": 2, "P1": 1} and list(s.categories) == ["P3", "P1"]
    assert s.to_dict()["categories"] == {"P3": 2, "P1": 1}


def test_paired_comparison():
    a = [5, 4, 5, 3, 4, 5, 4, 5, 3, 4] * 3
    b = [1, 1, 2, 1, 1, 2, 1, 1, 1, 2] * 3
    c = paired_comparison(a, b)
    assert c.n == 30
    assert c.difference.value == pytest.approx(np.mean(b) - np.mean(a))
    assert c.difference.high < 0
    assert c.wilcoxon_p < 0.001
    same = paired_comparison([1, 2], [1, 2])
    assert same.wilcoxon_p == 1.0
    with pytest.raises(ValueError):
        paired_comparison([1], [1, 2])
