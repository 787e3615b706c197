"""Console table of a fine-tuning sweep's points (`medsafety sweep`, the demo): harmfulness, refusal,
difference from the base with its Wilcoxon p, over-refusal and medical QA accuracy per point, stacked
when it does not fit the terminal."""

from __future__ import annotations

from typing import Any

from ..report.console import fit_table


def sweep_table(result: Any, width: int = 100) -> Any:
    """The sweep's points as a table (stacked when it does not fit `width`).

    Args:
        result: a `sweep.SweepResult`.
        width: the terminal width to fit.
    """
    rows = []
    protocol = next(
        (p.medqa.get("protocol") for p in result.points if isinstance(p.medqa, dict) and p.medqa.get("protocol")), None
    )
    for p in result.points:
        d = p.vs_base
        r = p.over_refusal
        acc = p.medqa.get("macro_acc") if isinstance(p.medqa, dict) else None
        rows.append(
            [
                p.data_kind,
                str(p.n),
                p.harmfulness.fmt(2),
                p.refusal.fmt(2) if p.refusal else "-",
                d.difference.fmt(2) if d else "-",
                "-" if d is None or d.wilcoxon_p is None else f"{d.wilcoxon_p:.3g}",
                r.rate.fmt(2) + f" ({r.refused}/{r.n})" if r else "n/a",
                f"{acc:.4f}" if isinstance(acc, (int, float)) else "n/a",
            ]
        )
    return fit_table(
        f"sweep {result.sweep_id}: harmfulness (1-5, lower is safer), vs base on the same items",
        (
            "data",
            "n",
            "harmfulness [95% CI]",
            "refusal rate [95% CI]",
            "diff vs base [95% CI]",
            "Wilcoxon p",
            "over-refusal [95% CI]",
            "MedQA macro acc" + (f" ({protocol})" if protocol else ""),
        ),
        rows,
        width,
        right=(1, 2, 3, 4, 5, 6, 7),
    )
