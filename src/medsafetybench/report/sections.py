"""Extra report sections from other stages (fine-tuning sweeps, medical QA trade-off), as plain data.

A stage that has results to show adds a *section provider*: a function
`provider(store, runs) -> list[Section]` that reads its own tables in the store and returns no
sections when it has no data (so the report shows nothing for it). Providers are found two ways:

- a module listed in `SECTION_MODULES` that defines `report_sections(store, runs)` (the one-line hook,
  like `cli.COMMAND_MODULES`); a listed module that is not installed is skipped;
- `register_section_provider(fn)` at run time (tests, plug-ins).

Sections are *data*, never HTML: paragraphs of text, tables of cells and matplotlib figures. The HTML
and Markdown renderers escape every string, so a provider cannot inject markup even by accident.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..store import RunInfo, Store

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class TableBlock:
    columns: list[str]
    rows: list[list[Any]]  # str / int / float (shown with 3 significant decimals) / None (shown as "-")
    caption: str = ""


@dataclass
class FigureBlock:
    """A matplotlib figure. `name` becomes the file name under --figures: lower-case letters, digits,
    '-' and '_' only (checked), never derived from model text."""

    name: str
    figure: Figure
    caption: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"figure name {self.name!r}: use 1-64 of a-z 0-9 - _")


Block = Paragraph | TableBlock | FigureBlock


@dataclass
class Section:
    key: str  # unique, a-z0-9-_ (used as the HTML anchor)
    title: str
    blocks: list[Block] = field(default_factory=list)
    order: int = 100  # built-in sections use 10-90; fine-tuning 50, medical QA 60 are suggested

    def __post_init__(self) -> None:
        if not _NAME.match(self.key):
            raise ValueError(f"section key {self.key!r}: use 1-64 of a-z 0-9 - _")

    @property
    def figures(self) -> list[FigureBlock]:
        return [b for b in self.blocks if isinstance(b, FigureBlock)]


SectionProvider = Callable[[Store, Sequence[RunInfo]], Sequence[Section]]

# Modules with `report_sections(store, runs) -> list[Section]`; the fine-tuning and medical QA stages
# add theirs here (e.g. "medsafetybench.finetune.report", "medsafetybench.medqa.report").
SECTION_MODULES: list[str] = [
    "medsafetybench.finetune.report",
    "medsafetybench.medqa.report",
    "medsafetybench.labels.report",
    "medsafetybench.labels.jury_report",
    "medsafetybench.cost.report",
]
_PROVIDERS: list[SectionProvider] = []


def register_section_provider(provider: SectionProvider) -> SectionProvider:
    """Add a provider (usable as a decorator); registering the same function twice is a no-op."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    return provider


def unregister_section_provider(provider: SectionProvider) -> None:
    if provider in _PROVIDERS:
        _PROVIDERS.remove(provider)


def section_providers() -> list[SectionProvider]:
    providers: list[SectionProvider] = []
    for name in SECTION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # the listed module itself is absent
                continue
            raise
        providers.append(module.report_sections)
    return providers + list(_PROVIDERS)


def extra_sections(store: Store, runs: Sequence[RunInfo]) -> list[Section]:
    """Every provider's sections, in `order` (stable), with unique keys."""
    out: list[Section] = []
    for provider in section_providers():
        out.extend(provider(store, runs) or [])
    keys = [s.key for s in out]
    if len(set(keys)) != len(keys):
        raise ValueError(f"report sections share a key: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return sorted(out, key=lambda s: s.order)
