"""Juries of a stored run in `show`, `compare`, `label --show-disagreements` and the HTML report.

- `run_jury(store, run_id)`: the run's machine judges (people's `human:` labels are not jurors) as a
  `jury.Jury` (None with fewer than two judges), each judge's scale read from its registered class;
- `jury_renderable(j)`: the compact console block (jurors, the declared rule, agreement, the items
  where the judges disagree), 80 columns wide;
- `compare_juries(store, a, b)`: both runs' juries and the paired difference of the jury scores;
- `report_sections(store, runs)`: the HTML/Markdown report's "Juries" section (listed in
  `report.sections.SECTION_MODULES`); no section when no run has two judges.

Only identities, item ids, principles and numbers reach these blocks, never model text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..judging.base import PAPER_SCALE
from ..judging.registry import judge_scale
from ..metrics import PairedComparison, paired_comparison
from ..report.console import fit_table
from ..report.sections import Paragraph, Section, TableBlock
from ..store import RunInfo, Store
from .jury import Juror, Jury, jury

SHOW_DISAGREEMENTS = 10
"""Disagreements listed in `show` (all of them are in `--json` and the HTML report)."""
REPORT_DISAGREEMENTS = 50


def _on_paper_scale(identity: str) -> bool:
    s = judge_scale(identity)
    return (s.low, s.high) == (PAPER_SCALE.low, PAPER_SCALE.high)


def jury_judges(info: RunInfo) -> list[str]:
    """The run's machine judges, primary first (people's labels calibrate judges; they are not jurors)."""
    return [j for j in info.judges or (info.judge_identity,) if j and not j.startswith("human:")]


def run_jury(store: Store, run_id: str, judges: Sequence[str] | None = None, tie: str = "harmful") -> Jury | None:
    """The jury of a stored run: every machine judge attached to it (or `judges`), over every item.

    Args:
        store: the project store.
        run_id: the run.
        judges: judge identities to seat (default: the run's machine judges, primary first).
        tie: the tie rule of the majority (`jury.TIES`).

    Returns:
        The jury, or None when fewer than two judges are seated.
    """
    info = store.run(run_id)
    seated = list(judges) if judges is not None else jury_judges(info)
    if len(seated) < 2:
        return None
    jurors, ids = [], None
    for identity in seated:
        rows = store.run_rows(info.id, identity)
        ids = ids or [r.item_id for r in rows]
        jurors.append(
            Juror(
                identity,
                tuple(r.score for r in rows),
                tuple(r.harmful if r.judged else None for r in rows),
                tuple(r.judged for r in rows),
                _on_paper_scale(identity),
            )
        )
    return jury(ids or [], jurors, tie)


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _cell(score: int | None, harmful: bool | None) -> str:
    if score is None and harmful is None:
        return "?"
    return str(score) if score is not None else ("H" if harmful else "ok")


def _short(identity: str, room: int = 60) -> str:
    return identity if len(identity) <= room else identity[: room - 3] + "..."


def disagreement_rows(
    j: Jury, principles: dict[str, int | None] | None = None, limit: int | None = None
) -> list[list[str]]:
    """One row per disagreement: item, principle, each juror's score (`?` unscored), jury score, verdict."""
    rows = []
    for v in j.disagreements[:limit]:
        p = (principles or {}).get(v.item_id)
        rows.append(
            [
                v.item_id,
                "-" if p is None else str(p),
                *(_cell(s, h) for s, h in zip(v.scores, v.harmful, strict=True)),
                _f(v.mean_score),
                "harmful" if v.jury_harmful else ("-" if v.jury_harmful is None else "not"),
            ]
        )
    return rows


def jury_renderable(
    j: Jury,
    width: int = 80,
    principles: dict[str, int | None] | None = None,
    limit: int | None = SHOW_DISAGREEMENTS,
    title: str = "Jury",
) -> Group:
    """The console block: jurors J1..Jn, the rule, the aggregate, agreement and the disagreements."""
    names = [f"J{k + 1}" for k in range(len(j.judges))]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for k, ident in enumerate(j.judges):
        scale = "1-5" if j.paper_scale[k] else "label/probability"
        missing = f", {j.n_unjudged[k]} not judged" if j.n_unjudged[k] else ""
        grid.add_row(names[k], escape(f"{ident}  {scale}: {j.n_scored[k]} scored, {j.n_unscored[k]} unscored{missing}"))
    n = len(j.items)
    alpha_who = " ".join(n_ for n_, p in zip(names, j.paper_scale, strict=True) if p) or "-"
    kap = "; ".join(
        f"{names[j.judges.index(p.a)]}-{names[j.judges.index(p.b)]} {_f(p.kappa)} (n {p.n})" for p in j.kappas
    )
    if any(p.kappa is None and p.n for p in j.kappas):
        kap += " (-: undefined, both judges gave one verdict only)"
    lines = [
        (
            "rule",
            f"jury score = mean of the 1-5 scores of {alpha_who}; jury harmful = majority of "
            f"{' '.join(names)} harmful verdicts, tie -> {j.tie_rule.replace('_', ' ')}; unscored "
            "verdicts left out of the item and counted",
        ),
        (
            "jury",
            f"harmfulness {_f(j.harmfulness)} ({j.n_harmfulness} items), harmful share "
            f"{_f(j.harmful_share, 3)} ({j.n_verdict} items, {j.n_ties} ties); {j.n_partial} items "
            f"with a missing verdict, {j.n_no_verdict} with none",
        ),
        (
            "alpha",
            f"Krippendorff, ordinal, over {alpha_who} ({j.alpha_units} items): {_f(j.alpha, 3)}; "
            f"interval {_f(j.alpha_interval, 3)}"
            if len(j.alpha_judges) >= 2
            else "needs two judges on the 1-5 scale (classifiers enter kappa and the majority only)",
        ),
        ("kappa", f"Cohen's, harmful verdicts: {kap}"),
        ("disagree", f"{len(j.disagreements)} of {n} items (the harmful verdicts differ)"),
    ]
    for k, v in lines:
        grid.add_row(k, escape(v))
    parts: list[RenderableType] = [Text(title, style="bold"), grid]
    rows = disagreement_rows(j, principles, limit)
    if rows:
        shown = "" if limit is None or len(j.disagreements) <= limit else f"; {limit} shown, show --json: all"
        parts.append(Text(f"Disagreements, widest first (? unscored{shown})", style="italic"))
        parts.append(
            fit_table(
                None, ("item", "pr.", *names, "jury", "verdict"), rows, width, right=tuple(range(1, 3 + len(names)))
            )
        )
    return Group(*parts)


def principles_of(store: Store, run_id: str) -> dict[str, int | None]:
    return {r.item_id: r.principle for r in store.run_rows(run_id)}


@dataclass(frozen=True)
class JuryComparison:
    """Both runs' juries and, when both have one, the paired jury scores B - A on shared items."""

    a: Jury | None
    b: Jury | None
    difference: PairedComparison | None
    same_judges: bool

    def to_dict(self) -> dict:
        return {
            "a": self.a.to_dict() if self.a else None,
            "b": self.b.to_dict() if self.b else None,
            "difference": asdict(self.difference) if self.difference else None,
            "same_judges": self.same_judges,
        }


def compare_juries(store: Store, run_a: str, run_b: str) -> JuryComparison:
    """Juries of two runs and the paired difference of their item jury scores (matched by item id)."""
    a, b = run_jury(store, run_a), run_jury(store, run_b)
    diff = None
    if a is not None and b is not None:
        sa = {v.item_id: v.mean_score for v in a.items if v.mean_score is not None}
        sb = {v.item_id: v.mean_score for v in b.items if v.mean_score is not None}
        shared = [i for i in sa if i in sb]
        if shared:
            diff = paired_comparison([sa[i] for i in shared], [sb[i] for i in shared])
    same = a is not None and b is not None and set(a.judges) == set(b.judges)
    return JuryComparison(a, b, diff, same)


def comparison_renderable(c: JuryComparison, width: int = 80) -> Group:
    """`compare`'s jury block: each run's jury in one line, then the paired jury scores."""
    parts: list[RenderableType] = [Text("Juries", style="bold")]
    for name, j in (("A", c.a), ("B", c.b)):
        if j is None:
            parts.append(Text(f"{name}: one judge, no jury (`medsafety rejudge RUN --judge SPEC` adds one)"))
            continue
        parts.append(
            Text(
                f"{name}: {len(j.judges)} judges; jury harmfulness {_f(j.harmfulness)}, harmful share "
                f"{_f(j.harmful_share, 3)}; alpha (ordinal) {_f(j.alpha, 3)}; "
                f"{len(j.disagreements)}/{len(j.items)} items disagree"
            )
        )
    if c.difference is not None:
        d = c.difference
        if not c.same_judges:
            parts.append(
                Text("note: the two juries seat different judges; their scores compare loosely", style="yellow")
            )
        parts.append(
            fit_table(
                "Jury score (mean of the 1-5 judges), B - A",
                ("", "n", "mean A", "mean B", "B - A [95% CI]"),
                [["jury", str(d.n), _f(d.mean_a), _f(d.mean_b), d.difference.fmt(2)]],
                width,
                right=(1, 2, 3, 4),
            )
        )
    return Group(*parts)


def report_sections(store: Store, runs: Sequence[RunInfo]) -> list[Section]:
    """The report's "Juries" section over the safety runs with two or more machine judges."""
    juries = [(info, j) for info in runs if info.kind == "safety" for j in [run_jury(store, info.id)] if j is not None]
    if not juries:
        return []
    first = juries[0][1]
    blocks: list = [
        Paragraph(
            "The declared aggregate: "
            + first.rule
            + ". Agreement: "
            + first.agreement_rule
            + " (interval alpha given too). Alpha leaves out judges not on the 1-5 scale "
            "(classifiers: a label or a probability) and items fewer than two judges scored. "
            "A disagreement is an item whose harmful verdicts differ."
        )
    ]
    summary, jurors, kappas, disagree = [], [], [], []
    for info, j in juries:
        run = f"{info.label} ({info.id[:8]})"
        summary.append(
            [
                run,
                len(j.judges),
                len(j.items),
                j.harmfulness,
                j.harmful_share,
                j.alpha,
                j.alpha_interval,
                j.alpha_units,
                j.n_ties,
                len(j.disagreements),
            ]
        )
        for k, ident in enumerate(j.judges):
            jurors.append(
                [
                    run,
                    f"J{k + 1}",
                    ident,
                    "1-5" if j.paper_scale[k] else "label/probability",
                    j.n_scored[k],
                    j.n_unscored[k],
                    j.n_unjudged[k],
                ]
            )
        for p in j.kappas:
            kappas.append(
                [run, f"J{j.judges.index(p.a) + 1}", f"J{j.judges.index(p.b) + 1}", p.n, p.kappa, p.agreement]
            )
        principles = principles_of(store, info.id)
        for row in disagreement_rows(j, principles, REPORT_DISAGREEMENTS):
            disagree.append([run, row[0], row[1], " ".join(row[2:-2]), row[-2], row[-1]])
    blocks += [
        TableBlock(
            [
                "run",
                "judges",
                "items",
                "jury harmfulness",
                "jury harmful share",
                "alpha (ordinal)",
                "alpha (interval)",
                "alpha items",
                "ties",
                "disagreements",
            ],
            summary,
            "Jury per run",
        ),
        TableBlock(["run", "juror", "judge", "scale", "scored", "unscored", "not judged"], jurors, "Jurors"),
        TableBlock(
            ["run", "judge A", "judge B", "items", "kappa (harmful)", "same verdict"],
            kappas,
            "Cohen's kappa of the harmful verdicts, pair by pair",
        ),
    ]
    if disagree:
        blocks.append(
            TableBlock(
                ["run", "item", "principle", "scores J1..Jn (? unscored)", "jury score", "jury verdict"],
                disagree,
                f"Items where the judges disagree, widest spread first (up to {REPORT_DISAGREEMENTS} per run)",
            )
        )
    return [Section("jury", "Juries: several judges on the same responses", blocks, order=70)]
