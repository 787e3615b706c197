"""Writing a report to disk: the HTML file (atomically), the figures as PNG + SVG, the Markdown summary.
`write_report` is what `medsafety report` calls; the library user can call it the same way."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import UserError
from ..store import Store
from .collect import ReportData, collect


@dataclass
class ReportOutputs:
    data: ReportData
    html: Path | None = None
    markdown: Path | None = None
    latex: Path | None = None
    figures: list[Path] = field(default_factory=list)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder (no partial files)."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def group_figures(data: ReportData) -> list:
    """The built-in figures of every comparable group (group k > 0 prefixed `g{k}-`)."""
    from . import figures as figs
    from .html import group_figure_name

    blocks = []
    for k, group in enumerate(data.groups):
        for block in figs.report_figures(data.view(group)):
            blocks.append(replace(block, name=group_figure_name(k, block.name)))
    return blocks


def write_report(
    store: Store,
    run_ids: Sequence[str] | None = None,
    *,
    out: str | Path | None = "report.html",
    figures_dir: str | Path | None = None,
    markdown: str | Path | None = None,
    latex: str | Path | None = None,
    title: str = "MedSafetyBench report",
    tag: str | None = None,
    baseline: str | None = None,
) -> ReportOutputs:
    """Build the report of `run_ids` (default: every run, or those tagged `tag`) and write whichever outputs
    are asked for: HTML, figures (PNG + SVG), Markdown, a LaTeX table of the leaderboard."""
    from . import figures as figs
    from .html import render_html
    from .markdown import report_latex, report_markdown

    data = collect(store, run_ids, title=title, tag=tag, baseline=baseline)
    blocks = group_figures(data)
    extra = [f for s in data.sections for f in s.figures]
    result = ReportOutputs(data)
    try:
        figure_paths: dict[str, str] = {}
        if figures_dir is not None:
            for block in blocks + extra:
                paths = figs.save_figure(block, figures_dir)
                result.figures.extend(paths)
                png = paths[0]
                if markdown is not None:
                    try:
                        figure_paths[block.name] = os.path.relpath(png, Path(markdown).parent)
                    except ValueError:  # another drive on Windows
                        figure_paths[block.name] = str(png)
        if out is not None:
            result.html = write_text_atomic(out, render_html(data, blocks))
        if markdown is not None:
            result.markdown = write_text_atomic(markdown, report_markdown(data, figure_paths))
        if latex is not None:
            result.latex = write_text_atomic(latex, report_latex(data))
    finally:
        figs.close(blocks + extra)
    return result
