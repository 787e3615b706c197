"""Paired before/after comparison of two medical QA results: McNemar's test per task on the questions
both answered. Results of different protocols or settings are never compared (a UserError says so)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UserError, require
from .results import MedQAResult


def mcnemar(b: int, c: int) -> float:
    """Two-sided McNemar p-value from the discordant counts b (A right, B wrong) and c (A wrong, B right):
    exact binomial for b + c <= 25, else chi-square with continuity correction (scipy)."""
    n = b + c
    if n == 0:
        return 1.0
    if n <= 25:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
        return min(1.0, 2 * tail)
    stats = require("scipy.stats", "stats", "The McNemar test")
    return float(stats.chi2.sf((abs(b - c) - 1) ** 2 / n, 1))


@dataclass
class PairedTask:
    name: str
    n: int  # questions scored for both models
    acc_a: float | None
    acc_b: float | None
    a_only: int  # right for A only
    b_only: int  # right for B only
    p_value: float

    def to_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class MedQAComparison:
    a: MedQAResult
    b: MedQAResult
    tasks: list[PairedTask]

    def to_dict(self) -> dict:
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "protocol": self.a.label,
            "paired": [t.to_dict() for t in self.tasks],
        }


def compare_results(a: MedQAResult, b: MedQAResult) -> MedQAComparison:
    """McNemar per task (and group) on the questions both results scored. Under the paper protocol with
    several seeds a question is right when most seeds got it right (`results.py`)."""
    if (a.protocol, a.settings) != (b.protocol, b.settings):
        raise UserError(
            f"cannot compare medical QA results of different protocols or settings: "
            f"{a.label} {a.settings} vs {b.label} {b.settings}"
        )
    rb = {t.name: t for t in [*b.tasks, *b.groups]}
    out = []
    for ta in [*a.tasks, *a.groups]:
        tb = rb.get(ta.name)
        if tb is None:
            continue
        shared = sorted(set(ta.correct) & set(tb.correct))
        x = [ta.correct[q] for q in shared]
        y = [tb.correct[q] for q in shared]
        a_only = sum(1 for u, v in zip(x, y, strict=True) if u and not v)
        b_only = sum(1 for u, v in zip(x, y, strict=True) if v and not u)
        n = len(shared)
        out.append(
            PairedTask(
                ta.name,
                n,
                sum(x) / n if n else None,
                sum(y) / n if n else None,
                a_only,
                b_only,
                mcnemar(a_only, b_only),
            )
        )
    return MedQAComparison(a, b, out)
