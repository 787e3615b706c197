"""A Markdown summary for READMEs and CI logs: leaderboard, by principle, by source, unscored counts,
the extra sections' tables and provenance. Model-written text (responses, reasoning) never appears;
specs and identities are made table-safe (no pipes, newlines or raw HTML)."""

from __future__ import annotations

from collections.abc import Sequence

from ..labels.agreement import JudgePairAgreement, LabelAgreement
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
    numeric = [
        bool(rows) and all(isinstance(r[i], int | float | Estimate) or r[i] is None for r in rows)
        for i in range(len(columns))
    ]
    lines = [
        "| " + " | ".join(md(c) for c in columns) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _group_markdown(data: ReportData, k: int, figure_paths: dict[str, str]) -> list[str]:
    group = data.groups[k]
    view = data.view(group)
    prefix = "" if k == 0 else f"g{k}-"
    title = "Leaderboard" if k == 0 else f"Group {k + 1} (not comparable with the leaderboard)"
    out = ["", f"## {title}", "", f"Comparable runs: {md(group.description)}", ""]
    out.append(
        md_table(
            ["#", "model", "group", "run", "harmfulness [95% CI]", "harmful share", "refusal rate", "scored/items"],
            [
                [
                    i,
                    r.info.label,
                    r.group or "-",
                    r.info.id[:12],
                    r.summary.overall.harmfulness,
                    r.summary.overall.harmful_share,
                    r.summary.overall.refusal_rate,
                    f"{r.summary.overall.n_scored}/{r.summary.n_items}",
                ]
                for i, r in enumerate(view.runs, start=1)
            ],
        )
    )
    if prefix + "leaderboard" in figure_paths:
        out += ["", f"![leaderboard]({figure_paths[prefix + 'leaderboard']})"]
    pairs = data.paired(group)
    if pairs and data.baseline is not None:
        out += ["", f"Paired against {md(data.baseline.label)} (difference = model - baseline; negative is safer):", ""]
        out.append(
            md_table(
                ["model", "shared items", "difference [95% CI]", "Wilcoxon p"],
                [[r.label, c.n, c.difference, c.wilcoxon_p] for r, c in pairs],
            )
        )
    names = [f"{p}. {principle_info(p).short_name}" for p in view.principles]
    if names:
        out += ["", "### By principle", ""]
        rows = []
        for name in names:
            row: list[object] = [name]
            for run in view.runs:
                g = {x.name: x for x in run.summary.by_principle}.get(name)
                row.append(g.harmfulness.fmt(2) if g else "-")
            rows.append(row)
        out.append(md_table(["principle"] + [r.label for r in view.runs], rows))
        if prefix + "heatmap" in figure_paths:
            out += ["", f"![heatmap]({figure_paths[prefix + 'heatmap']})"]
    if view.sources:
        out += ["", "### By source", ""]
        out.append(
            md_table(
                ["source"] + [r.label for r in view.runs],
                [
                    [s]
                    + [next((g.harmfulness.fmt(2) for g in r.summary.by_source if g.name == s), "-") for r in view.runs]
                    for s in view.sources
                ],
            )
        )
    return out


def report_markdown(data: ReportData, figure_paths: dict[str, str] | None = None) -> str:
    """The summary; `figure_paths` (figure name -> relative PNG path) adds image links."""
    figure_paths = figure_paths or {}
    out = [
        f"# {md(data.title)}",
        "",
        "Harmfulness: mean 1-5 judge score, lower is safer; refusal rate: the refusal detector's; 95% bootstrap "
        "intervals. Only runs with the same items, judge and settings are ranked together.",
    ]
    for k in range(len(data.groups)):
        out += _group_markdown(data, k, figure_paths)
    if data.excluded:
        out += ["", "Not ranked: " + "; ".join(md(x) for x in data.excluded)]
    out += ["", "## Unscored and missing", ""]
    out.append(
        md_table(
            ["model", "items", "unscored", "without response", "unjudged"],
            [
                [r.label, r.summary.n_items, r.summary.n_unscored, r.summary.n_missing_response, r.summary.n_unjudged]
                for r in data.runs
            ],
        )
    )
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
    out += [
        "",
        "## Provenance",
        "",
        f"Generated {p.generated_at} by medsafetybench {p.package_version}; benchmark data commit "
        f"`{p.data_commit}`; " + ", ".join(f"{k} {v}" for k, v in p.libraries.items()) + ".",
        "",
    ]
    out.append(
        md_table(
            ["run", "model spec", "judge identity", "prompt version", "created"],
            [[r.info.id, r.info.model_spec, r.judge, r.prompt_version, fmt_time(r.info.created_at)] for r in data.runs],
        )
    )
    return "\n".join(out) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex(value: object) -> str:
    """Text made safe for LaTeX (special characters escaped, newlines flattened)."""
    text = _cell(value).replace("\r", " ").replace("\n", " ")
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _tex_est(e: Estimate, digits: int = 2) -> str:
    if e.value is None:
        return "--"
    if e.low is None:
        return f"{e.value:.{digits}f}"
    return f"{e.value:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def report_latex(data: ReportData) -> str:
    """A booktabs table of the leaderboard (the first comparable group), ready for a paper: model, group,
    mean harmfulness, harmful share and refusal rate with 95% intervals, and n."""
    if not data.groups:
        return "% no judged safety runs\n"
    group = data.groups[0]
    lines = [
        "% generated by medsafetybench " + tex(data.provenance.package_version) + "; " + tex(group.description),
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        "\\begin{tabular}{llrrrr}",
        "\\toprule",
        "Model & Group & Harmfulness (1--5) & Harmful share & Refusal rate & $n$ \\\\",
        "\\midrule",
    ]
    for r in group.runs:
        o = r.summary.overall
        lines.append(
            f"{tex(r.info.label)} & {tex(r.group or '--')} & {_tex_est(o.harmfulness)} & "
            f"{_tex_est(o.harmful_share)} & {_tex_est(o.refusal_rate)} & {o.n_scored} \\\\"
        )
    lines += [
        "\\bottomrule",
        "\\end{tabular}",
        "\\caption{Mean harmfulness (1 = declines, 5 = fulfils the harmful request; lower is safer) with 95\\% "
        "bootstrap intervals, share judged harmful, and refusal rate. Judge: " + tex(group.judge) + ".}",
        "\\label{tab:medsafetybench}",
        "\\end{table}",
    ]
    return "\n".join(lines) + "\n"


def agreement_markdown(
    judge_identity: str, agreement: LabelAgreement, n_failed: int = 0, *, in_sample: LabelAgreement | None = None
) -> str:
    """`agreement` is over the held-out rows; `in_sample` (rows the judge was trained on) is reported
    apart and, when no row is held out, in its place, marked as in-sample."""
    note = ""
    if in_sample is not None and not agreement.n:
        agreement = in_sample
        note = (
            f" **In-sample:** all {in_sample.n} labelled rows were in this judge's training data, so these "
            "figures are an upper bound, not an estimate of its accuracy."
        )
    elif in_sample is not None:
        s = in_sample.at_threshold
        note = (
            f" {in_sample.n} more rows were in this judge's training data and are left out above; on them "
            f"(in-sample, an upper bound): accuracy {_cell(s.accuracy)}, kappa {_cell(s.kappa)}."
        )
    a = agreement.at_threshold
    out = [
        f"## Judge agreement: {md(judge_identity)}",
        "",
        f"{agreement.n} labelled responses, {agreement.n_unscored} unscored"
        + (f", {n_failed} not judged (calls failed)" if n_failed else "")
        + f"; harmful = score >= {agreement.threshold}."
        + note,
        "",
        md_table(
            ["accuracy", "Cohen's kappa", "precision (harmful)", "recall (harmful)", "F1"],
            [[a.accuracy, a.kappa, a.precision, a.recall, a.f1]],
        ),
        "",
        "Confusion (rows: human label, columns: judge):",
        "",
        md_table(
            ["", "judge: not harmful", "judge: harmful"],
            [["human: not harmful", a.tn, a.fp], ["human: harmful", a.fn, a.tp]],
        ),
        "",
        "By threshold:",
        "",
        md_table(
            ["threshold", "accuracy", "kappa", "precision", "recall", "tp", "fp", "fn", "tn"],
            [
                [
                    p.threshold,
                    p.agreement.accuracy,
                    p.agreement.kappa,
                    p.agreement.precision,
                    p.agreement.recall,
                    p.agreement.tp,
                    p.agreement.fp,
                    p.agreement.fn,
                    p.agreement.tn,
                ]
                for p in agreement.sweep
            ],
        ),
    ]
    return "\n".join(out) + "\n"


def judge_pair_markdown(label_a: str, label_b: str, pair: JudgePairAgreement) -> str:
    out = [
        f"## Two judges: A = {md(label_a)}, B = {md(label_b)}",
        "",
        f"{pair.n} responses, {pair.n_both_scored} scored by both.",
        "",
        md_table(
            [
                "exact",
                "within one",
                "kappa (1-5)",
                "weighted kappa (quadratic)",
                f"kappa (harmful, >= {pair.threshold})",
            ],
            [[pair.exact, pair.within_one, pair.kappa, pair.weighted_kappa, pair.binary.kappa]],
        ),
        "",
        "Scores (rows: A, columns: B):",
        "",
        md_table(["A \\ B", "1", "2", "3", "4", "5"], [[i + 1, *row] for i, row in enumerate(pair.confusion)]),
    ]
    return "\n".join(out) + "\n"
