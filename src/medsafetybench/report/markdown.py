"""A Markdown summary for READMEs and CI logs: leaderboard, by principle, by source, unscored counts,
the extra sections' tables and provenance. Model-written text (responses, reasoning) never appears;
specs and identities are made table-safe (no pipes, newlines or raw HTML)."""

from __future__ import annotations

from collections.abc import Sequence

from ..judging.agreement import JudgePairAgreement, LabelAgreement
from ..metrics import Estimate
from ..principles import principle as principle_info
from .collect import ReportData, fmt_time
from .html import _cell
from .sections import FigureBlock, Paragraph, TableBlock


def md(value: object) -> str:
    """One table-safe Markdown cell."""
    text = _cell(value).replace("&", "&amp;").replace("<", "&lt;")
    return text.replace("|", "\\|").replace("`", "'").replace("\r", " ").replace("\n", " ")


def md_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    numeric = [bool(rows) and all(isinstance(r[i], int | float | Estimate) or r[i] is None for r in rows)
               for i in range(len(columns))]
    lines = ["| " + " | ".join(md(c) for c in columns) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report_markdown(data: ReportData, figure_paths: dict[str, str] | None = None) -> str:
    """The summary; `figure_paths` (figure name -> relative PNG path) adds image links."""
    figure_paths = figure_paths or {}
    out = [f"# {md(data.title)}", "",
           "Harmfulness: mean 1-5 judge score, lower is safer; 95% bootstrap intervals.", "", "## Leaderboard", ""]
    out.append(md_table(["#", "model", "run", "judge", "harmfulness [95% CI]", "share >= 4", "scored/items"],
                        [[k, r.info.model_spec, r.info.id[:12], r.info.judge_identity, r.summary.overall.harmfulness,
                          r.summary.overall.harmful_share, f"{r.summary.overall.n_scored}/{r.summary.n_items}"]
                         for k, r in enumerate(data.runs, start=1)]))
    if "leaderboard" in figure_paths:
        out += ["", f"![leaderboard]({figure_paths['leaderboard']})"]
    names = [f"{p}. {principle_info(p).short_name}" for p in data.principles]
    if names:
        out += ["", "## By principle", ""]
        rows = []
        for name in names:
            row: list[object] = [name]
            for run in data.runs:
                g = {x.name: x for x in run.summary.by_principle}.get(name)
                row.append(g.harmfulness.fmt(2) if g else "-")
            rows.append(row)
        out.append(md_table(["principle"] + [r.label for r in data.runs], rows))
        if "by-principle" in figure_paths:
            out += ["", f"![by principle]({figure_paths['by-principle']})"]
    if data.sources:
        out += ["", "## By source", ""]
        out.append(md_table(["source"] + [r.label for r in data.runs],
                            [[s] + [next((g.harmfulness.fmt(2) for g in r.summary.by_source if g.name == s), "-")
                                    for r in data.runs] for s in data.sources]))
    out += ["", "## Unscored and missing", ""]
    out.append(md_table(["model", "items", "unscored", "without response", "unjudged"],
                        [[r.label, r.summary.n_items, r.summary.n_unscored, r.summary.n_missing_response,
                          r.summary.n_unjudged] for r in data.runs]))
    for section in data.sections:
        out += ["", f"## {md(section.title)}"]
        for b in section.blocks:
            if isinstance(b, Paragraph):
                out += ["", md(b.text)]
            elif isinstance(b, TableBlock):
                out += ["", md_table(b.columns, b.rows)]
            elif isinstance(b, FigureBlock) and b.name in figure_paths:
                out += ["", f"![{md(b.caption or b.name)}]({figure_paths[b.name]})"]
    p = data.provenance
    out += ["", "## Provenance", "",
            f"Generated {p.generated_at} by medsafetybench {p.package_version}; benchmark data commit "
            f"`{p.data_commit}`; " + ", ".join(f"{k} {v}" for k, v in p.libraries.items()) + ".", ""]
    out.append(md_table(["run", "model spec", "judge identity", "prompt version", "created"],
                        [[r.info.id, r.info.model_spec, r.info.judge_identity, r.prompt_version,
                          fmt_time(r.info.created_at)] for r in data.runs]))
    return "\n".join(out) + "\n"


def agreement_markdown(judge_identity: str, agreement: LabelAgreement, n_failed: int = 0, *,
                       in_sample: LabelAgreement | None = None) -> str:
    """`agreement` is over the held-out rows; `in_sample` (rows the judge was trained on) is reported
    apart and, when no row is held out, in its place, marked as in-sample."""
    note = ""
    if in_sample is not None and not agreement.n:
        agreement = in_sample
        note = (f" **In-sample:** all {in_sample.n} labelled rows were in this judge's training data, so these "
                "figures are an upper bound, not an estimate of its accuracy.")
    elif in_sample is not None:
        s = in_sample.at_threshold
        note = (f" {in_sample.n} more rows were in this judge's training data and are left out above; on them "
                f"(in-sample, an upper bound): accuracy {_cell(s.accuracy)}, kappa {_cell(s.kappa)}.")
    a = agreement.at_threshold
    out = [f"## Judge agreement: {md(judge_identity)}", "",
           f"{agreement.n} labelled responses, {agreement.n_unscored} unscored"
           + (f", {n_failed} not judged (calls failed)" if n_failed else "")
           + f"; harmful = score >= {agreement.threshold}." + note, "",
           md_table(["accuracy", "Cohen's kappa", "precision (harmful)", "recall (harmful)", "F1"],
                    [[a.accuracy, a.kappa, a.precision, a.recall, a.f1]]), "",
           "Confusion (rows: human label, columns: judge):", "",
           md_table(["", "judge: not harmful", "judge: harmful"],
                    [["human: not harmful", a.tn, a.fp], ["human: harmful", a.fn, a.tp]]), "",
           "By threshold:", "",
           md_table(["threshold", "accuracy", "kappa", "precision", "recall", "tp", "fp", "fn", "tn"],
                    [[p.threshold, p.agreement.accuracy, p.agreement.kappa, p.agreement.precision,
                      p.agreement.recall, p.agreement.tp, p.agreement.fp, p.agreement.fn, p.agreement.tn]
                     for p in agreement.sweep])]
    return "\n".join(out) + "\n"


def judge_pair_markdown(label_a: str, label_b: str, pair: JudgePairAgreement) -> str:
    out = [f"## Two judges: A = {md(label_a)}, B = {md(label_b)}", "",
           f"{pair.n} responses, {pair.n_both_scored} scored by both.", "",
           md_table(["exact", "within one", "kappa (1-5)", "weighted kappa (quadratic)",
                     f"kappa (harmful, >= {pair.threshold})"],
                    [[pair.exact, pair.within_one, pair.kappa, pair.weighted_kappa, pair.binary.kappa]]), "",
           "Scores (rows: A, columns: B):", "",
           md_table(["A \\ B", "1", "2", "3", "4", "5"], [[i + 1, *row] for i, row in enumerate(pair.confusion)])]
    return "\n".join(out) + "\n"
