"""Figures with matplotlib (Agg backend, no display): the leaderboard with intervals, the paper's
per-principle bar chart, harmfulness by source, score distributions, and the judge-agreement
figures. Each builder returns a `FigureBlock`; `png_bytes` / `save_figure` turn one into a PNG (for
embedding) or PNG + SVG files (for papers). matplotlib is the `[report]` extra."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from ..errors import require
from ..labels.agreement import JudgePairAgreement, LabelAgreement
from ..metrics import GroupStats
from ..principles import principle as principle_info
from .collect import ReportData, RunReport
from .sections import FigureBlock

COLORS = ("#3b6ea8", "#d08c2e", "#4f9a5b", "#b5495b", "#7a5fa6", "#6b7f8c", "#c0a23a", "#2f9c9c")


def _plt():
    mpl = require("matplotlib", "report", "Figures")
    mpl.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # a report holds every figure until it is written, then closes them all (`close`): no warning at 20
    plt.rcParams["figure.max_open_warning"] = 0
    return plt


def _err(groups: Sequence[GroupStats]) -> tuple[list[float], list[list[float]]]:
    values, lo, hi = [], [], []
    for g in groups:
        e = g.harmfulness
        v = e.value if e.value is not None else float("nan")
        values.append(v)
        lo.append(v - e.low if e.low is not None else 0.0)
        hi.append(e.high - v if e.high is not None else 0.0)
    return values, [lo, hi]


def _short(label: str, width: int = 38) -> str:
    """Shortened for a figure; `$` escaped so matplotlib never reads a model spec as mathtext."""
    label = label if len(label) <= width else label[: width - 1] + "\u2026"
    return label.replace("$", r"\$")


def leaderboard_figure(runs: Sequence[RunReport]) -> FigureBlock:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(runs) + 1.4))
    values, err = _err([r.summary.overall for r in runs])
    y = list(range(len(runs)))[::-1]
    ax.errorbar(values, y, xerr=err, fmt="o", color=COLORS[0], ecolor="#555", capsize=4)
    ax.set_yticks(y, [_short(r.short_label) for r in runs])
    ax.set_xlim(1, 5)
    ax.set_xlabel("harmfulness score (mean 1-5 judge score, 95% CI; lower is safer)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return FigureBlock("leaderboard", fig, "Mean harmfulness by model with 95% bootstrap intervals.")


def principle_figure(data: ReportData) -> FigureBlock:
    """Grouped bars: one group per AMA principle, one bar per model (the paper's Figure 2 layout)."""
    plt = _plt()
    principles = data.principles or list(range(1, 10))
    fig, ax = plt.subplots(figsize=(10, 4.6))
    k = max(len(data.runs), 1)
    width = 0.8 / k
    for j, run in enumerate(data.runs):
        by = {int(g.name.split(".", 1)[0]): g for g in run.summary.by_principle}
        groups = [by[p] for p in principles if p in by]
        xs = [principles.index(p) - 0.4 + width * (j + 0.5) for p in principles if p in by]
        values, err = _err(groups)
        ax.bar(
            xs,
            values,
            width,
            yerr=err,
            capsize=2,
            label=_short(run.short_label),
            color=COLORS[j % len(COLORS)],
            error_kw={"elinewidth": 0.8, "ecolor": "#333"},
        )
    ax.set_xticks(
        range(len(principles)),
        [f"{p}. {principle_info(p).short_name}" for p in principles],
        rotation=30,
        ha="right",
        fontsize=8,
    )
    ax.set_ylim(0, 5)
    ax.set_ylabel("harmfulness (1-5)")
    ax.set_title("Harmfulness by AMA principle")
    if data.runs:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return FigureBlock("by-principle", fig, "Mean harmfulness per principle and model (95% bootstrap intervals).")


def source_figure(data: ReportData) -> FigureBlock:
    plt = _plt()
    sources = data.sources
    fig, ax = plt.subplots(figsize=(7, 3.6))
    k = max(len(data.runs), 1)
    width = 0.8 / k
    for j, run in enumerate(data.runs):
        by = {g.name: g for g in run.summary.by_source}
        groups = [by[s] for s in sources if s in by]
        xs = [sources.index(s) - 0.4 + width * (j + 0.5) for s in sources if s in by]
        values, err = _err(groups)
        ax.bar(xs, values, width, yerr=err, capsize=2, label=_short(run.short_label), color=COLORS[j % len(COLORS)])
    ax.set_xticks(range(len(sources)), sources)
    ax.set_ylim(0, 5)
    ax.set_ylabel("harmfulness (1-5)")
    ax.set_title("Harmfulness by source of the request")
    if data.runs:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return FigureBlock("by-source", fig, "Mean harmfulness per request source and model.")


def score_distribution_figure(data: ReportData) -> FigureBlock:
    """Stacked horizontal bars: the share of each score 1-5 per model, unscored in grey."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(data.runs) + 1.5))
    shades = ("#2e7d32", "#9ccc65", "#fdd835", "#fb8c00", "#c62828")
    y = list(range(len(data.runs)))[::-1]
    for yi, run in zip(y, data.runs, strict=True):
        s = run.summary
        total = max(sum(s.score_counts.values()) + s.n_unscored, 1)
        left = 0.0
        for score in range(1, 6):
            share = s.score_counts.get(score, 0) / total
            ax.barh(yi, share, left=left, color=shades[score - 1], label=str(score) if yi == y[0] else None)
            left += share
        ax.barh(yi, s.n_unscored / total, left=left, color="#bdbdbd", label="unscored" if yi == y[0] else None)
    ax.set_yticks(y, [_short(r.short_label) for r in data.runs])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of judged items")
    ax.legend(ncol=6, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), title="score", title_fontsize=7)
    fig.tight_layout()
    return FigureBlock("score-distribution", fig, "How each model's judged responses spread over the five scores.")


def heatmap_figure(data: ReportData) -> FigureBlock:
    """Models x principles, mean harmfulness in each cell (the paper's per-principle view at a glance)."""
    plt = _plt()
    principles = data.principles or list(range(1, 10))
    grid = []
    for run in data.runs:
        by = {int(g.name.split(".", 1)[0]): g.harmfulness.value for g in run.summary.by_principle}
        grid.append([by.get(p) if by.get(p) is not None else float("nan") for p in principles])
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(principles), 0.45 * len(data.runs) + 1.6))
    im = ax.imshow(grid, cmap="RdYlGn_r", vmin=1, vmax=5, aspect="auto")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v == v:  # not NaN
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v > 3.8 or v < 1.6 else "black",
                )
    ax.set_xticks(range(len(principles)), [str(p) for p in principles])
    ax.set_xlabel("AMA principle")
    ax.set_yticks(range(len(data.runs)), [_short(r.short_label) for r in data.runs], fontsize=8)
    fig.colorbar(im, ax=ax, label="harmfulness (1-5)")
    fig.tight_layout()
    return FigureBlock("heatmap", fig, "Mean harmfulness per model (rows) and AMA principle (columns).")


def _ordered_by_group(runs: Sequence[RunReport]) -> list[RunReport]:
    """Medical models first, then general, then others; within a group in leaderboard order."""
    rank = {"medical": 0, "general": 1}
    return sorted(runs, key=lambda r: (rank.get(r.group or "", 2), r.group or "", runs.index(r)))


def harm_refusal_figure(data: ReportData) -> FigureBlock:
    """Two panels: harmfulness and refusal rate per model with 95% intervals, models grouped (medical/general)."""
    plt = _plt()
    runs = _ordered_by_group(data.runs)
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(runs) + 1.6), sharey=True)
    y = list(range(len(runs)))[::-1]
    groups = sorted({r.group or "" for r in runs})
    color = {g: COLORS[k % len(COLORS)] for k, g in enumerate(groups)}
    for ax, attr, lim, label in (
        (axes[0], "harmfulness", (1, 5), "harmfulness (1-5)"),
        (axes[1], "refusal_rate", (0, 1), "refusal rate"),
    ):
        for yi, run in zip(y, runs, strict=True):
            e = getattr(run.summary.overall, attr)
            if e.value is None:
                continue
            err = [[e.value - e.low if e.low is not None else 0.0], [e.high - e.value if e.high is not None else 0.0]]
            ax.errorbar([e.value], [yi], xerr=err, fmt="o", color=color[run.group or ""], ecolor="#555", capsize=3)
        ax.set_xlim(*lim)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [_short(r.short_label) + (f"  [{r.group}]" if r.group else "") for r in runs], fontsize=8)
    fig.tight_layout()
    return FigureBlock(
        "harm-refusal",
        fig,
        "Harmfulness and refusal rate per model (95% bootstrap intervals), models grouped by their study group.",
    )


def paired_figure(pairs: Sequence[tuple[RunReport, object]], baseline: RunReport) -> FigureBlock:
    """Mean paired difference in harmfulness (model - baseline) on shared items, with 95% intervals."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(pairs) + 1.6))
    y = list(range(len(pairs)))[::-1]
    for yi, (_run, cmp) in zip(y, pairs, strict=True):
        d = cmp.difference
        if d.value is None:
            continue
        err = [[d.value - d.low if d.low is not None else 0.0], [d.high - d.value if d.high is not None else 0.0]]
        ax.errorbar(
            [d.value], [yi], xerr=err, fmt="o", color=COLORS[0] if d.value <= 0 else COLORS[3], ecolor="#555", capsize=3
        )
    ax.axvline(0, color="#333", lw=0.8)
    ax.set_yticks(y, [_short(r.short_label) for r, _ in pairs], fontsize=8)
    ax.set_xlabel(f"harmfulness difference vs {_short(baseline.short_label)} (negative = safer)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return FigureBlock(
        "paired",
        fig,
        "Paired difference in mean harmfulness against the baseline on shared items (95% paired bootstrap intervals).",
    )


def report_figures(data: ReportData) -> list[FigureBlock]:
    """The built-in figures of one comparable group (a `data.view(group)`), in order."""
    if not data.runs:
        return []
    figs = [leaderboard_figure(data.runs), harm_refusal_figure(data), heatmap_figure(data), principle_figure(data)]
    if data.sources:
        figs.append(source_figure(data))
    figs.append(score_distribution_figure(data))
    for group in data.groups[:1]:
        pairs = data.paired(group)
        if pairs and data.baseline is not None:
            figs.append(paired_figure(pairs, data.baseline))
    return figs


def threshold_figure(agreement: LabelAgreement, judge_label: str) -> FigureBlock:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ts = [p.threshold for p in agreement.sweep]
    for name, color in (("accuracy", COLORS[0]), ("kappa", COLORS[1]), ("precision", COLORS[2]), ("recall", COLORS[3])):
        vals = [getattr(p.agreement, name) for p in agreement.sweep]
        ax.plot(ts, [v if v is not None else float("nan") for v in vals], "o-", label=name, color=color)
    ax.axvline(agreement.threshold, color="#999", ls="--", lw=0.8)
    ax.set_xticks(ts)
    ax.set_xlabel("score threshold (score >= t counts as harmful)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(_short(judge_label, 60), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return FigureBlock("agreement-threshold", fig, "Agreement with human labels as the threshold moves.")


def _matrix(ax, m: Sequence[Sequence[int]], rows: Sequence[str], cols: Sequence[str]) -> None:
    ax.imshow(m, cmap="Blues")
    top = max((v for r in m for v in r), default=0)
    for i, r in enumerate(m):
        for j, v in enumerate(r):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black", fontsize=9)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)


def confusion_figure(agreement: LabelAgreement) -> FigureBlock:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3.4))
    _matrix(ax, agreement.at_threshold.confusion, ["not harmful", "harmful"], ["not harmful", "harmful"])
    ax.set_ylabel("human label")
    ax.set_xlabel(f"judge (score >= {agreement.threshold})")
    fig.tight_layout()
    return FigureBlock("agreement-confusion", fig, "Judge against human labels at the chosen threshold.")


def judge_pair_figure(pair: JudgePairAgreement, label_a: str, label_b: str) -> FigureBlock:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4))
    _matrix(ax, pair.confusion, ["1", "2", "3", "4", "5"], ["1", "2", "3", "4", "5"])
    ax.set_ylabel(_short(f"judge A: {label_a}", 45), fontsize=8)
    ax.set_xlabel(_short(f"judge B: {label_b}", 45), fontsize=8)
    fig.tight_layout()
    return FigureBlock("judge-pair-confusion", fig, "Scores of two judges on the same responses.")


def png_bytes(block: FigureBlock, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    block.figure.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(block: FigureBlock, directory: str | Path, dpi: int = 150) -> list[Path]:
    """Write `<name>.png` and `<name>.svg` under `directory` (created); returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        path = directory / f"{block.name}.{ext}"
        block.figure.savefig(path, format=ext, dpi=dpi)
        paths.append(path)
    return paths


def close(blocks: Sequence[FigureBlock]) -> None:
    plt = _plt()
    for b in blocks:
        plt.close(b.figure)
