"""What a report shows, gathered from the store once: the runs with their summaries and rows, the
leaderboard order, provenance (judge, prompt version, data commit, model specs, library versions,
dates) and the extra sections other stages provide. The renderers (html, markdown, figures) read
only this record, never the store."""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata

from .. import __version__
from ..data import DATA_COMMIT
from ..errors import UserError
from ..metrics import Summary
from ..pipeline import summarise_run
from ..store import RunInfo, RunRow, Store
from .sections import Section, extra_sections

LIBRARIES = ("numpy", "scipy", "matplotlib", "openai", "torch", "transformers", "peft", "vllm",
             "sentence-transformers")


@dataclass
class RunReport:
    info: RunInfo
    summary: Summary
    rows: list[RunRow]

    @property
    def label(self) -> str:
        """How the run is named in tables and figures: its model spec and short id."""
        return f"{self.info.model_spec} ({self.info.id[:8]})"

    @property
    def short_label(self) -> str:
        """For figures and the items table: the spec without its endpoint URL, and the short id."""
        return f"{self.info.model_spec.split('@', 1)[0]} ({self.info.id[:8]})"

    @property
    def prompt_version(self) -> str:
        ident = self.info.judge_identity
        if "|" in ident:
            return ident.rsplit("|", 1)[1]
        return "n/a (no judge prompt)" if ident.startswith("offline") else "-"


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
        return [("report generated", self.generated_at), ("medsafetybench", self.package_version),
                ("benchmark data commit", self.data_commit), ("python", self.python),
                ("platform", self.platform), ("run store", self.store_path),
                *[(name, v) for name, v in self.libraries.items()]]


@dataclass
class ReportData:
    title: str
    runs: list[RunReport]  # in leaderboard order: safest (lowest mean harmfulness) first
    provenance: Provenance
    sections: list[Section] = field(default_factory=list)

    @property
    def principles(self) -> list[int]:
        return sorted({r.principle for run in self.runs for r in run.rows if r.principle is not None})

    @property
    def sources(self) -> list[str]:
        return sorted({r.source for run in self.runs for r in run.rows if r.source})


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape results (absent ones are left out)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def fmt_time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _leaderboard_key(run: RunReport) -> tuple:
    value = run.summary.overall.harmfulness.value
    return (value is None, value if value is not None else 0.0, run.info.model_spec, run.info.id)


def resolve_runs(store: Store, run_ids: Sequence[str] | None) -> list[RunInfo]:
    """The runs named (ids or unique prefixes), or every run in the store."""
    if run_ids:
        infos = [store.run(r) for r in run_ids]
        seen: set[str] = set()
        return [i for i in infos if not (i.id in seen or seen.add(i.id))]
    infos = store.runs()
    if not infos:
        raise UserError(f"no runs in {store.path}: run `medsafety eval` first or pass --project")
    return infos


def collect(store: Store, run_ids: Sequence[str] | None = None, *, title: str = "MedSafetyBench report",
            with_sections: bool = True, now: float | None = None) -> ReportData:
    infos = resolve_runs(store, run_ids)
    runs = [RunReport(info, summarise_run(store, info.id), store.run_rows(info.id)) for info in infos]
    runs.sort(key=_leaderboard_key)
    generated = dt.datetime.now(dt.timezone.utc).timestamp() if now is None else now
    prov = Provenance(generated_at=fmt_time(generated), package_version=__version__, data_commit=DATA_COMMIT,
                      python=platform.python_version(), platform=f"{platform.system()} {platform.machine()}",
                      libraries=library_versions(), store_path=str(store.path))
    sections = extra_sections(store, infos) if with_sections else []
    return ReportData(title=title, runs=runs, provenance=prov, sections=sections)
