"""Console tables of medical QA results (`medsafety medqa`, `medqa runs`, the demo): fit 80 columns,
percentages with two decimals and their intervals in columns of their own, MMLU subjects indented
under the pooled `mmlu_medical` row without their prefix."""

from __future__ import annotations

import datetime

from rich import box
from rich.table import Table

from .compare import MedQAComparison
from .results import MedQAResult, TaskResult
from .scores import MedQARun


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def _ci(e) -> str:  # noqa: ANN001 - metrics.Estimate
    return "" if e is None or e.low is None else f"{100 * e.low:.2f}-{100 * e.high:.2f}"


def _table(title: str, columns: list[str], left: int = 1) -> Table:
    """A borderless table; the first `left` columns left-aligned, the rest right-aligned."""
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i < left else "right", overflow="fold")
    return t


def _ordered(r: MedQAResult) -> list[tuple[str, TaskResult]]:
    """Display order: tasks outside groups, then each group with its members indented beneath it."""
    rows = [(t.name, t) for t in r.tasks if not t.name.startswith("mmlu_")]
    for g in r.groups:
        rows.append((g.name, g))
        rows += [("  " + t.name.removeprefix("mmlu_"), t) for t in r.tasks if t.name.startswith("mmlu_")]
    rows += [(t.name, t) for t in r.tasks if t.name.startswith("mmlu_") and not r.groups]
    return rows


def result_table(r: MedQAResult) -> Table:
    t = _table(
        f"Medical QA accuracy (%) of {r.model_spec}\nprotocol: {r.label}; 95% bootstrap intervals",
        ["task", "n", "acc", "95% CI", "acc_norm", "invalid"],
    )
    for name, x in _ordered(r):
        n = f"{x.n_scored}" if x.n_scored == x.n else f"{x.n_scored}/{x.n}"
        t.add_row(
            name, n, _pct(x.acc.value), _ci(x.acc), _pct(x.acc_norm.value) if x.acc_norm else "-", str(x.n_invalid)
        )
    t.add_row("macro average", "", _pct(r.macro), "", "", "")
    return t


def replicate_table(r: MedQAResult) -> Table | None:
    """Paper protocol with several seeds: accuracy (%) per seed (rows) and headline task (columns)."""
    units = [u for u in r.headline if u.replicates]
    if not units:
        return None
    t = _table("Accuracy (%) per in-context seed", ["seed", *[u.name for u in units]])
    for seed in units[0].replicates:
        t.add_row(seed.removeprefix("seed "), *[_pct(u.replicates.get(seed)) for u in units])
    t.add_row("mean", *[_pct(u.acc.value) for u in units])
    return t


def comparison_table(c: MedQAComparison) -> Table:
    t = _table(
        f"A = {c.a.model_spec}\nB = {c.b.model_spec}\nprotocol: {c.a.label}; paired McNemar test per task",
        ["task", "n", "acc A", "acc B", "B - A", "A only", "B only", "p"],
    )
    for p in c.tasks:
        diff = "-" if p.acc_a is None else f"{100 * (p.acc_b - p.acc_a):+.2f}"
        t.add_row(
            p.name.removeprefix("mmlu_") if p.name != "mmlu_medical" and p.name.startswith("mmlu_") else p.name,
            str(p.n),
            _pct(p.acc_a),
            _pct(p.acc_b),
            diff,
            str(p.a_only),
            str(p.b_only),
            f"{p.p_value:.3g}",
        )
    return t


def runs_table(runs: list[MedQARun]) -> Table:
    t = _table(
        "Stored medical QA results (accuracy %, macro over tasks)",
        ["#", "model", "protocol", "questions", "macro", "last scored"],
        left=3,
    )
    for i, r in enumerate(runs, 1):
        when = datetime.datetime.fromtimestamp(r.last_at).strftime("%Y-%m-%d %H:%M")
        t.add_row(str(i), r.model_identity, r.label, str(sum(r.tasks.values())), _pct(r.macro_acc), when)
    return t
