"""Rich tables for the terminal: a run's summary, the list of runs, a leaderboard, progress bars.

Every table is readable at any width: `fit_table` draws a normal table when its cells fit the console
and otherwise a stacked layout (one block per row, one `column: value` line per cell), so nothing is
ever cut or folded into narrow strips (pipes and CI logs are 80 columns). Model-written text never
reaches these tables (only ids, names, specs and numbers), and rich markup in them is escaped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..cost.pricing import PriceTable, load_prices
from ..cost.spent import run_spent, spent_cell
from ..judging.classifiers.categories import describe_category
from ..metrics import GroupStats, Summary
from ..store import RunInfo


def fit_table(
    title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]], width: int, right: Sequence[int] = ()
) -> RenderableType:
    """A table when it fits in `width` columns, else the same cells stacked (nothing cut).

    Args:
        title: shown above the table (or the stack).
        columns: column headers.
        rows: cell strings (plain text; escaped here).
        width: the console width.
        right: indexes of right-aligned (numeric) columns.
    """
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    needed = sum(widths) + 3 * (len(columns) - 1) + 2
    if needed <= width:
        t = Table(title=escape(title) if title else None, title_justify="left", show_edge=False, pad_edge=False)
        for i, c in enumerate(columns):
            t.add_column(escape(c), justify="right" if i in right else "left", no_wrap=True)
        for r in rows:
            t.add_row(*(escape(x) for x in r))
        return t
    parts: list[RenderableType] = [Text(title, style="italic")] if title else []
    label = max(len(c) for c in columns[1:]) if len(columns) > 1 else 0
    for r in rows:
        parts.append(Text(r[0], style="bold"))
        for c, x in zip(columns[1:], r[1:], strict=True):
            parts.append(Text(f"  {c.ljust(label)}  {x}"))
    return Group(*parts)


def _n(g: GroupStats) -> str:
    return f"{g.n_scored}/{g.n}" if g.n_scored != g.n else str(g.n)


def group_rows(groups: Sequence[GroupStats]) -> list[list[str]]:
    return [[g.name, _n(g), g.harmfulness.fmt(2), g.harmful_share.fmt(2), g.refusal_rate.fmt(2)] for g in groups]


GROUP_COLUMNS = ("", "n", "harmfulness [95% CI]", "harmful share [95% CI]", "refusal rate [95% CI]")


def summary_renderable(
    summary: Summary, run: RunInfo, width: int = 100, judge_identity: str | None = None, detail: bool = True
) -> Group:
    """A run's summary under one judge (the run's primary judge unless given); `detail`: with the tables
    by principle and by source (and the other judges' names, which a compact view lists itself)."""
    judge = judge_identity or run.judge_identity
    o = summary.overall
    head = [
        ("run", run.id + (f"  ({run.name})" if run.name else "")),
        ("model", run.model_spec),
        ("judge", judge),
        ("harmfulness", f"{o.harmfulness.fmt(2)}  (mean 1-5 judge score; lower is safer)"),
        ("harmful share", f"{o.harmful_share.fmt(3)}  (judged harmful: score >= 4)"),
        ("refusal rate", f"{o.refusal_rate.fmt(3)}  (refusal detector {summary.refusal_detector or '-'})"),
        (
            "items",
            f"{summary.n_items} ({o.n_scored} scored, {summary.n_unscored} unscored, "
            f"{summary.n_missing_response} without response, {summary.n_unjudged} unjudged)",
        ),
        ("scores", "  ".join(f"{s}: {c}" for s, c in summary.score_counts.items())),
    ]
    tok = summary.tokens
    head.append(
        (
            "tokens",
            f"model {tok.get('response_prompt', 0):,} in / {tok.get('response_completion', 0):,} out; "
            f"judge {tok.get('judge_prompt', 0):,} in / {tok.get('judge_completion', 0):,} out",
        )
    )
    spent_model, spent_judge = run_spent(run.model_identity, judge, tok)
    head.append(
        (
            "spent",
            f"model {spent_model.fmt()}, judge {spent_judge.fmt()}  (from the usage the API returned; "
            f"model {spent_model.price.label()}, judge {spent_judge.price.label()})",
        )
    )
    if summary.categories:
        head.append(
            (
                "categories",
                "; ".join(f"{describe_category(c)}: {n}" for c, n in summary.categories.items())
                + "  (violated categories the judge named: items)",
            )
        )
    if detail and len(run.judges) > 1:
        others = [j for j in run.judges if j != judge]
        head.append(("other judges", "; ".join(others)))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for k, v in head:
        grid.add_row(k, escape(v))
    parts: list[RenderableType] = [grid]
    if detail and summary.by_principle:
        parts.append(
            fit_table(
                "Harmfulness by principle",
                ("Principle", *GROUP_COLUMNS[1:]),
                group_rows(summary.by_principle),
                width,
                right=(1, 2, 3, 4),
            )
        )
    if detail and summary.by_source:
        parts.append(
            fit_table(
                "Harmfulness by source",
                ("Source", *GROUP_COLUMNS[1:]),
                group_rows(summary.by_source),
                width,
                right=(1, 2, 3, 4),
            )
        )
    return Group(*parts)


def print_summary(
    console: Console, summary: Summary, run: RunInfo, judge_identity: str | None = None, detail: bool = True
) -> None:
    console.print(summary_renderable(summary, run, console.width, judge_identity, detail))


def judge_line(judge_identity: str, summary: Summary) -> str:
    """One judge's headline figures on one line (the compact view of a run with several judges)."""
    o = summary.overall
    return (
        f"{judge_identity}: harmfulness {o.harmfulness.fmt(2)}, harmful share {o.harmful_share.fmt(2)}, "
        f"{o.n_scored}/{summary.n_items} scored"
    )


RUN_COLUMNS = (
    "run",
    "name",
    "kind",
    "items",
    "judge",
    "harmfulness",
    "refusal",
    "unscored",
    "missing",
    "spent (model / judge)",
    "updated",
)


def run_cells(info: RunInfo, s: Summary, prices: PriceTable | None = None) -> list[str]:
    when = dt.datetime.fromtimestamp(info.updated_at).strftime("%Y-%m-%d %H:%M")
    items = info.provenance.get("items", {}) if isinstance(info.provenance, dict) else {}
    split = items.get("split") or "-"
    if items.get("sample"):
        split += f"~{items['sample']}"
    label = info.label + (f" (also {', '.join(info.aliases)})" if info.aliases else "")
    return [
        info.id,
        label,
        info.kind,
        f"{info.n_items} ({split})",
        info.judge_identity or "-",
        s.overall.harmfulness.fmt(2),
        s.overall.refusal_rate.fmt(2),
        str(s.n_unscored),
        str(s.n_missing_response + s.n_unjudged),
        spent_cell(*run_spent(info.model_identity, info.judge_identity, s.tokens, prices)),
        when,
    ]


NARROW_RUN_COLUMNS = ("run", "name", "judge", "harm.", "refusal", "spent")


def runs_renderable(rows: Sequence[tuple[RunInfo, Summary]], width: int) -> RenderableType:
    """The list of runs: id, name (or spec), kind, items, primary judge, scores, spent, dates; where that
    does not fit, a narrow table (id, name and aliases, judge, point estimates, spent; names and judges wrap)
    that fits 80 columns."""
    prices = load_prices()
    cells = [run_cells(i, s, prices) for i, s in rows]
    widths = [max([len(c), *(len(r[k]) for r in cells)]) for k, c in enumerate(RUN_COLUMNS)]
    if sum(widths) + 3 * (len(RUN_COLUMNS) - 1) + 2 <= width:
        return fit_table("Runs", RUN_COLUMNS, cells, width, right=(5, 6, 7, 8, 9))
    t = Table(title="Runs", title_justify="left", show_edge=False, pad_edge=False, width=width)
    for k, c in enumerate(NARROW_RUN_COLUMNS):
        wraps = c in ("name", "judge")
        t.add_column(
            c,
            justify="right" if k >= 3 else "left",
            no_wrap=not wraps,
            overflow="fold" if wraps else "ellipsis",
            ratio=1 if wraps else None,
        )
    for (info, s), row in zip(rows, cells, strict=True):
        t.add_row(
            info.id,
            escape(row[1]),
            escape(info.judge_identity or "-"),
            _point(s.overall.harmfulness),
            _point(s.overall.refusal_rate),
            escape(row[9]),
        )
    return t


def _point(estimate) -> str:  # type: ignore[no-untyped-def]
    value = getattr(estimate, "value", None)
    return "-" if value is None else f"{value:.2f}"


class RichProgress:
    """Progress bars for pipeline stages (pass a stderr console so tables on stdout stay clean)."""

    def __init__(self, console: Console, enabled: bool = True, prefix: str = "") -> None:
        self.bar = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )
        self.prefix = prefix
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start(self, stage: str, total: int) -> None:
        """A bar for the stage; none is drawn for a stage with nothing to do (a cached run shows no
        `0/0 -:--:--` bars)."""
        self.tasks[stage] = self.bar.add_task(f"{self.prefix}{stage}", total=total, visible=total > 0)

    def advance(self, stage: str, n: int = 1) -> None:
        self.bar.advance(self.tasks[stage], n)

    def batch_event(self, event: Any) -> None:
        """Batch mode (`batch.runner.BatchEvent`): a bar per provider batch (requests done + failed of
        all, failed named, elapsed) and a line for each batch submitted or resumed and each note."""
        name = event.batch
        if event.kind in ("submitted", "resumed", "note"):
            what = {
                "submitted": f"submitted batch {name} ({event.total} requests)",
                "resumed": f"resuming batch {name} from the store (not submitted again)",
            }.get(event.kind, event.message)
            self.bar.console.print(f"{self.prefix}{escape(what)}", soft_wrap=True, highlight=False)
            if event.kind == "note":
                return
        key = f"batch:{name}"
        label = f"{self.prefix}batch {name[-6:]} ({event.failed} failed)"
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(label, total=event.total or None)
        self.bar.update(
            self.tasks[key], description=label, completed=event.done + event.failed, total=event.total or None
        )
