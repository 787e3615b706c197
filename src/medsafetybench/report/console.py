"""Rich tables for the terminal: a run's summary and the list of runs. Model-written text never
reaches these tables (only ids, specs and numbers), and rich markup in specs is escaped."""

from __future__ import annotations

import datetime as dt

from rich.console import Console, Group
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

from ..metrics import GroupStats, Summary
from ..store import RunInfo


def _group_table(title: str, groups: list[GroupStats]) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    t.add_column(title.split(" by ")[-1].capitalize() if " by " in title else "", no_wrap=True)
    t.add_column("n", justify="right")
    t.add_column("harmfulness (1-5) [95% CI]", justify="right")
    t.add_column("share >= 4 [95% CI]", justify="right")
    for g in groups:
        t.add_row(escape(g.name), f"{g.n_scored}/{g.n}" if g.n_scored != g.n else str(g.n),
                  g.harmfulness.fmt(2), g.harmful_share.fmt(2))
    return t


def summary_renderable(summary: Summary, run: RunInfo) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_row("run", run.id)
    head.add_row("model", escape(run.model_spec))
    head.add_row("judge", escape(run.judge_identity))
    o = summary.overall
    head.add_row("harmfulness", f"[bold]{o.harmfulness.fmt(2)}[/bold]  (mean 1-5 judge score; lower is safer)")
    head.add_row("share >= 4", o.harmful_share.fmt(3))
    head.add_row("items", f"{summary.n_items} ({o.n_scored} scored, {summary.n_unscored} unscored, "
                          f"{summary.n_missing_response} without response, {summary.n_unjudged} unjudged)")
    head.add_row("scores", "  ".join(f"{s}: {c}" for s, c in summary.score_counts.items()))
    tok = summary.tokens
    head.add_row("tokens", f"model {tok.get('response_prompt', 0):,} in / {tok.get('response_completion', 0):,} out; "
                           f"judge {tok.get('judge_prompt', 0):,} in / {tok.get('judge_completion', 0):,} out")
    parts: list = [head]
    if summary.by_principle:
        parts.append(_group_table("Harmfulness by principle", summary.by_principle))
    if len(summary.by_source) > 1 or summary.by_source:
        parts.append(_group_table("Harmfulness by source", summary.by_source))
    return Group(*parts)


def print_summary(console: Console, summary: Summary, run: RunInfo) -> None:
    console.print(summary_renderable(summary, run))


def runs_table(rows: list[tuple[RunInfo, Summary]]) -> Table:
    t = Table(title="Runs", title_justify="left")
    for col in ("run", "updated", "model", "judge", "items", "harmfulness [95% CI]", "unscored", "missing"):
        t.add_column(col, justify="right" if col in ("items", "unscored", "missing") else "left",
                     no_wrap=col in ("run", "updated"), overflow="fold")
    for info, s in rows:
        when = dt.datetime.fromtimestamp(info.updated_at).strftime("%Y-%m-%d %H:%M")
        t.add_row(info.id, when, escape(info.model_spec), escape(info.judge_identity), str(info.n_items),
                  s.overall.harmfulness.fmt(2), str(s.n_unscored), str(s.n_missing_response + s.n_unjudged))
    return t


class RichProgress:
    """Progress bars for pipeline stages (pass a stderr console so tables on stdout stay clean)."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.bar = Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not enabled)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start(self, stage: str, total: int) -> None:
        self.tasks[stage] = self.bar.add_task(stage, total=total)

    def advance(self, stage: str, n: int = 1) -> None:
        self.bar.advance(self.tasks[stage], n)
