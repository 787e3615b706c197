"""What a report shows, gathered from the store once: the scored runs (one entry per run and judge),
grouped so that only comparable entries are ranked together, provenance, and the extra sections other
stages provide. The renderers (html, markdown, latex, figures) read only this record, never the store.

Comparable means: the same item set (digest of ids, requests and policies), the same judge identity and
the same settings (system prompt, decoding). Each `ComparableGroup` has its own leaderboard; the report
says what sets groups apart. Over-refusal runs (benign questions asked by the fine-tuning sweep) are
not safety results and never enter a leaderboard; human labels (`human:*` judges) are not ranked either.
"""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .._version import __version__
from ..data import DATA_COMMIT
from ..errors import UserError
from ..evaluation.pipeline import summarise_run
from ..evaluation.provenance import library_versions
from ..metrics import PairedComparison, Summary, paired_comparison
from ..store import RunInfo, RunRow, Store
from .sections import Section, extra_sections


@dataclass
class RunReport:
    """One run under one judge."""

    info: RunInfo
    summary: Summary
    rows: list[RunRow]
    judge: str = ""
    multi_judge: bool = False
    """The run has several ranked judges, so its label names the judge too."""

    def __post_init__(self) -> None:
        self.judge = self.judge or self.info.judge_identity

    @property
    def label(self) -> str:
        """How the entry is named in tables: the run's name (else its spec), and its short id."""
        base = f"{self.info.label} ({self.info.id[:8]})"
        return f"{base} [{_judge_short(self.judge)}]" if self.multi_judge else base

    @property
    def short_label(self) -> str:
        """For figures: the run's name, else the spec without its URL, then the short id."""
        return self.label

    @property
    def group(self) -> str | None:
        """The model group (`medical`, `general`, ...) from a `group:` tag, if any."""
        return next((t.split(":", 1)[1] for t in self.info.tags if t.startswith("group:")), None)

    @property
    def prompt_version(self) -> str:
        ident = self.judge
        if "|" in ident:
            return ident.rsplit("|", 1)[1]
        return "n/a (no judge prompt)" if ident.startswith("offline") else "-"


def _judge_short(identity: str) -> str:
    return identity.split("|", 1)[0].removeprefix("llm:")


@dataclass
class ComparableGroup:
    """Entries that share item set, judge and settings, ranked safest first."""

    key: tuple[str, str, str]
    runs: list[RunReport]
    description: str

    @property
    def judge(self) -> str:
        return self.key[1]


@dataclass
class Provenance:
    generated_at: str
    package_version: str
    data_commit: str
    python: str
    platform: str
    libraries: dict[str, str]
    store_path: str

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("report generated", self.generated_at),
            ("medsafetybench", self.package_version),
            ("benchmark data commit", self.data_commit),
            ("python", self.python),
            ("platform", self.platform),
            ("run store", self.store_path),
            *[(name, v) for name, v in self.libraries.items()],
        ]


@dataclass
class ReportData:
    title: str
    runs: list[RunReport]
    """Every ranked entry, group by group, each group safest first."""
    provenance: Provenance
    sections: list[Section] = field(default_factory=list)
    groups: list[ComparableGroup] = field(default_factory=list)
    baseline: RunReport | None = None
    """Entry the paired comparisons are against (`--baseline`), within its group."""
    excluded: list[str] = field(default_factory=list)
    """Why some runs are not in any leaderboard."""

    @property
    def principles(self) -> list[int]:
        return sorted({r.principle for run in self.runs for r in run.rows if r.principle is not None})

    @property
    def sources(self) -> list[str]:
        return sorted({r.source for run in self.runs for r in run.rows if r.source})

    def view(self, group: ComparableGroup) -> ReportData:
        """The same report restricted to one group (what the per-group renderers take)."""
        return replace(self, runs=list(group.runs), groups=[group])

    def paired(self, group: ComparableGroup) -> list[tuple[RunReport, PairedComparison]]:
        """Each entry of `group` against the baseline (when the baseline is in the group), on shared items."""
        base = self.baseline
        if base is None or base not in group.runs:
            return []
        scores_a = {r.item_id: r.score for r in base.rows if r.score is not None}
        out = []
        for run in group.runs:
            if run is base:
                continue
            scores_b = {r.item_id: r.score for r in run.rows if r.score is not None}
            shared = sorted(set(scores_a) & set(scores_b))
            out.append((run, paired_comparison([scores_a[i] for i in shared], [scores_b[i] for i in shared])))
        return out


def fmt_time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _rank_key(run: RunReport) -> tuple:
    value = run.summary.overall.harmfulness.value
    return (value is None, value if value is not None else 0.0, run.info.label, run.info.id)


def resolve_runs(store: Store, run_ids: Sequence[str] | None, tag: str | None = None) -> list[RunInfo]:
    """The runs named (ids, unique prefixes or names), those with `tag`, or every run in the store."""
    if run_ids:
        infos = [store.run(r) for r in run_ids]
        seen: set[str] = set()
        return [i for i in infos if not (i.id in seen or seen.add(i.id))]
    infos = store.runs(tag=tag)
    if not infos:
        where = f" tagged '{tag}'" if tag else ""
        raise UserError(f"no runs{where} in {store.path}: run `medsafety eval` first or pass --project")
    return infos


def _describe(run: RunReport) -> str:
    items = run.info.provenance.get("items") if isinstance(run.info.provenance, dict) else None
    what = ""
    if isinstance(items, dict):
        what = items.get("split") or ""
        if items.get("sample"):
            what += f", sample {items['sample']} (seed {items.get('seed', 0)})"
        if items.get("limit"):
            what += f", first {items['limit']}"
    sources = sorted({r.source for r in run.rows if r.source})
    what = what or "/".join(sorted({r.split for r in run.rows if r.split})) or "items"
    prompt = run.info.settings.get("system_prompt")
    gen = run.info.settings.get("generation", {})
    return (
        f"{run.info.n_items} items ({what}; {', '.join(sources) or '-'}); judge {run.judge}; "
        f"system prompt {'none' if prompt is None else f'{len(prompt)} chars'}, "
        f"max {gen.get('max_new_tokens', '?')} new tokens, temperature {gen.get('temperature', 0)} "
        f"[items {run.info.items_digest}, settings {run.info.settings_digest}]"
    )


def group_runs(entries: Sequence[RunReport]) -> list[ComparableGroup]:
    """Comparable groups, the largest first (ties: the group holding the oldest run)."""
    groups: dict[tuple[str, str, str], list[RunReport]] = {}
    for e in entries:
        groups.setdefault((e.info.items_digest or e.info.id, e.judge, e.info.settings_digest or ""), []).append(e)
    out = [ComparableGroup(k, sorted(v, key=_rank_key), _describe(v[0])) for k, v in groups.items()]
    out.sort(key=lambda g: (-len(g.runs), min(r.info.created_at for r in g.runs)))
    return out


def collect(
    store: Store,
    run_ids: Sequence[str] | None = None,
    *,
    title: str = "MedSafetyBench report",
    with_sections: bool = True,
    now: float | None = None,
    tag: str | None = None,
    baseline: str | None = None,
) -> ReportData:
    """Gather a report of `run_ids` (default: every run, or those tagged `tag`)."""
    infos = resolve_runs(store, run_ids, tag)
    entries: list[RunReport] = []
    excluded = []
    for info in infos:
        if info.kind != "safety":
            excluded.append(f"{info.label} ({info.id[:8]}): a {info.kind} run, not a safety result")
            continue
        judges = [j for j in info.judges or (info.judge_identity,) if j and not j.startswith("human:")]
        if not judges:
            excluded.append(f"{info.label} ({info.id[:8]}): not judged yet")
            continue
        for judge in judges:
            entries.append(
                RunReport(
                    info,
                    summarise_run(store, info.id, judge_identity=judge),
                    store.run_rows(info.id, judge),
                    judge,
                    multi_judge=len(judges) > 1,
                )
            )
    groups = group_runs(entries)
    ranked = [e for g in groups for e in g.runs]
    base = None
    if baseline:
        base_info = store.run(baseline)
        base = next((e for e in ranked if e.info.id == base_info.id), None)
        if base is None:
            raise UserError(f"--baseline {baseline}: that run is not among the report's safety runs")
    generated = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    prov = Provenance(
        generated_at=fmt_time(generated),
        package_version=__version__,
        data_commit=DATA_COMMIT,
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        libraries=library_versions(),
        store_path=str(store.path),
    )
    sections = extra_sections(store, infos) if with_sections else []
    return ReportData(
        title=title, runs=ranked, provenance=prov, sections=sections, groups=groups, baseline=base, excluded=excluded
    )


__all__ = [
    "RunReport",
    "ComparableGroup",
    "Provenance",
    "ReportData",
    "collect",
    "group_runs",
    "resolve_runs",
    "fmt_time",
    "library_versions",
]
