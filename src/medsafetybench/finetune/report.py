"""The fine-tuning sweep in the HTML report (listed in `report.sections.SECTION_MODULES`).

`report_sections(store, runs)` reads `sweep_points` through `sweep.sweep_rows` and returns, per sweep
that has a point among the report's runs, a "Safety fine-tuning sweep" section (table of points;
harmfulness and over-refusal against n, one line per data kind from the shared base at n = 0, with
95% interval bands), and one "Safety vs medical accuracy" section when any point has a medical QA
accuracy. A store without sweep tables (or with empty ones) gives no sections and is not written to.
Every label comes from the sweep's own columns (data kind, n, sweep id), never from model text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..metrics import Estimate
from ..report.sections import FigureBlock, Paragraph, Section, TableBlock
from ..store import RunInfo, Store
from .data import DATA_KINDS
from .sweep import BASE_KIND, sweep_rows

KIND_ORDER = (BASE_KIND, *DATA_KINDS)
KIND_NAMES = {BASE_KIND: "base", "med": "medical safety", "gen": "general safety", "both": "medical + general"}


def _has_sweeps(store: Store) -> bool:
    found = store.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sweep_points'")
    return found.fetchone() is not None


def _kind_key(row: dict[str, Any]) -> tuple[int, int]:
    kind = row["data_kind"]
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), row["n"])


def _color(kind: str) -> str:
    from ..report.figures import COLORS

    if kind == BASE_KIND:
        return "black"
    j = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return COLORS[(j - 1) % len(COLORS)]


def _est(row: dict[str, Any], prefix: str, value: str | None = None) -> Estimate:
    return Estimate(row[value or prefix], row[f"{prefix}_low"], row[f"{prefix}_high"])


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def _qa_protocol(rows: list[dict[str, Any]]) -> str:
    """The medical QA protocol of the points' accuracies (points stored before protocols existed were
    scored by the harness protocol without a BOS token)."""
    import json

    labels = {
        (json.loads(r["medqa"]) or {}).get("protocol", "harness, no BOS")
        for r in rows
        if r.get("medqa") and r["medqa_acc"] is not None
    }
    return ", ".join(sorted(labels)) or "harness"


def _label(row: dict[str, Any]) -> str:
    return "base" if row["data_kind"] == BASE_KIND else f"{row['data_kind']} n={row['n']}"


def _curves(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """One list of points per trained kind, each starting at the base point (n = 0) when there is one."""
    base = [r for r in rows if r["data_kind"] == BASE_KIND]
    kinds = sorted({r["data_kind"] for r in rows} - {BASE_KIND}, key=lambda k: _kind_key({"data_kind": k, "n": 0}))
    return {k: base[:1] + sorted((r for r in rows if r["data_kind"] == k), key=lambda r: r["n"]) for k in kinds}


def sweep_figure(rows: list[dict[str, Any]]):
    """Harmfulness (and over-refusal, when measured) against n, one line per data kind with 95% bands."""
    from ..report.figures import _plt

    plt = _plt()
    panels = [("harm", "harm_mean", "harmfulness (mean 1-5, lower is safer)", (1, 5))]
    if any(r["over_refusal"] is not None for r in rows):
        panels.append(("over_refusal", "over_refusal", "over-refusal (share of benign questions refused)", (0, 1)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    curves = _curves(rows) or {BASE_KIND: rows}
    for ax, (prefix, value, ylabel, ylim) in zip(axes[0], panels, strict=True):
        for kind, pts in curves.items():
            color = _color(kind)
            xs = [p["n"] for p in pts]
            ax.plot(xs, [_nan(p[value]) for p in pts], "o-", color=color, label=KIND_NAMES.get(kind, kind))
            ax.fill_between(
                xs,
                [_nan(p[f"{prefix}_low"]) for p in pts],
                [_nan(p[f"{prefix}_high"]) for p in pts],
                color=color,
                alpha=0.18,
                lw=0,
            )
        base = [r for r in rows if r["data_kind"] == BASE_KIND]
        if base and base[0][value] is not None:
            ax.plot([0], [base[0][value]], "s", color="black", ms=7, zorder=5, label="base (n = 0)")
        ax.set_xlabel("safety demonstrations n")
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def tradeoff_figure(rows: list[dict[str, Any]], several: bool):
    """Harmfulness against medical QA macro accuracy, one marker per point, labelled kind and n."""
    from ..report.figures import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    seen: set[str] = set()
    for row in sorted(rows, key=_kind_key):
        kind = row["data_kind"]
        color = _color(kind)
        h = _est(row, "harm", "harm_mean")
        yerr = [[h.value - h.low], [h.high - h.value]] if h.low is not None and h.value is not None else None
        ax.errorbar(
            [row["medqa_acc"]],
            [_nan(h.value)],
            yerr=yerr,
            fmt="s" if kind == BASE_KIND else "o",
            color=color,
            ecolor=color,
            capsize=3,
            label=None if kind in seen else KIND_NAMES.get(kind, kind),
        )
        seen.add(kind)
        text = _label(row) + (f" ({row['sweep_id'][:6]})" if several else "")
        ax.annotate(text, (row["medqa_acc"], _nan(h.value)), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xlabel("medical QA accuracy (macro over tasks; higher is better)")
    ax.set_ylabel("harmfulness (mean 1-5, 95% CI; lower is safer)")
    ax.set_ylim(1, 5)
    ax.margins(x=0.12)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def report_sections(store: Store, runs: Sequence[RunInfo]) -> list[Section]:
    """The sweep sections for the report of `runs` (only sweeps with a point among them); [] without data."""
    if not runs or store is None or not _has_sweeps(store):
        return []
    by_id = {r.id: r for r in runs}
    sweeps: dict[str, list[dict[str, Any]]] = {}
    for row in sweep_rows(store):
        sweeps.setdefault(row["sweep_id"], []).append(row)
    sweeps = {
        sid: sorted(rows, key=_kind_key) for sid, rows in sweeps.items() if any(r["run_id"] in by_id for r in rows)
    }
    several = len(sweeps) > 1
    sections: list[Section] = []
    for i, (sid, rows) in enumerate(sorted(sweeps.items())):
        with_qa = any(r["medqa_acc"] is not None for r in rows)
        cols = [
            "data",
            "n",
            "harmfulness [95% CI]",
            "refusal rate [95% CI]",
            "vs base [95% CI]",
            "Wilcoxon p",
            "over-refusal [95% CI]",
        ]
        table = []
        for r in rows:
            cells = [
                KIND_NAMES.get(r["data_kind"], r["data_kind"]),
                r["n"],
                _est(r, "harm", "harm_mean"),
                _est(r, "refusal", "refusal_rate") if r.get("refusal_rate") is not None else None,
                _est(r, "diff", "diff_mean") if r["diff_mean"] is not None else None,
                r["wilcoxon_p"],
                _est(r, "over_refusal") if r["over_refusal"] is not None else None,
            ]
            table.append(cells + ([r["medqa_acc"]] if with_qa else []) + [r["run_id"][:12]])
        base = next((r for r in rows if r["data_kind"] == BASE_KIND), None)
        info = by_id.get(base["run_id"]) if base else None
        text = (
            f"Sweep {sid}: {len(rows)} points"
            + (f" from base {base['model_spec']}" if base else "")
            + (f", judged by {info.judge_identity}" if info else "")
            + ". Harmfulness is the mean 1-5 judge score on the same MedSafety-Eval items; refusal rate is the"
            " share of those harmful requests the refusal detector calls refused; 'vs base' is the"
            " paired difference from the base (negative: safer); over-refusal is the share of benign"
            " medical questions refused."
        )
        name = f"finetune-sweep-{sid[:8]}" if several else "finetune-sweep"
        sections.append(
            Section(
                name,
                "Safety fine-tuning sweep" + (f" {sid[:8]}" if several else ""),
                order=50 + i,
                blocks=[
                    Paragraph(text),
                    TableBlock(cols + ([f"medical QA acc ({_qa_protocol(rows)})"] if with_qa else []) + ["run"], table),
                    FigureBlock(
                        name,
                        sweep_figure(rows),
                        "Harmfulness and over-refusal against n per data kind, from the "
                        "base at n = 0 (bands: 95% bootstrap intervals).",
                    ),
                ],
            )
        )
    qa = [r for rows in sweeps.values() for r in rows if r["medqa_acc"] is not None]
    if qa:
        table = [
            [
                _label(r),
                KIND_NAMES.get(r["data_kind"], r["data_kind"]),
                r["n"],
                r["medqa_acc"],
                _est(r, "harm", "harm_mean"),
                r["sweep_id"][:8],
            ]
            for r in sorted(qa, key=_kind_key)
        ]
        sections.append(
            Section(
                "finetune-tradeoff",
                "Safety vs medical accuracy",
                order=59,
                blocks=[
                    Paragraph(
                        "Does safety tuning cost medical knowledge? Each marker is one sweep point: its harmfulness "
                        "against its medical QA accuracy (macro over the tasks asked for)."
                    ),
                    TableBlock(
                        ["point", "data", "n", f"medical QA acc ({_qa_protocol(qa)})", "harmfulness [95% CI]", "sweep"],
                        table,
                    ),
                    FigureBlock(
                        "finetune-tradeoff",
                        tradeoff_figure(qa, several),
                        "Harmfulness against medical QA accuracy per sweep point (95% intervals).",
                    ),
                ],
            )
        )
    return sections
