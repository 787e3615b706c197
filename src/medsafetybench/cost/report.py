"""The HTML/Markdown report's "Cost" section: what each run's model and judge calls cost (`cost.spent`),
a report section provider listed in `report.sections.SECTION_MODULES`."""

from __future__ import annotations

from collections.abc import Sequence

from ..report.sections import Paragraph, Section, TableBlock
from ..store import RunInfo, Store
from .pricing import LOCAL, load_prices
from .spent import run_spent


def report_sections(store: Store, runs: Sequence[RunInfo]) -> list[Section]:
    """One table, a row per (run, judge): tokens and USD, the model and the judge apart (no section when
    every model and judge runs locally)."""
    from ..evaluation.pipeline import summarise_run

    prices = load_prices()
    rows = []
    api = False  # a report of local models and judges only has no cost section
    for info in runs:
        for judge in info.judges or (info.judge_identity,):
            if not judge or judge.startswith("human:"):
                continue
            tokens = summarise_run(store, info.id, judge_identity=judge).tokens
            model, j = run_spent(info.model_identity, judge, tokens, prices)
            api = api or model.price.status != LOCAL or j.price.status != LOCAL
            rows.append(
                [
                    info.label,
                    info.id[:8],
                    f"{model.prompt_tokens:,} / {model.completion_tokens:,}",
                    model.fmt(),
                    judge,
                    f"{j.prompt_tokens:,} / {j.completion_tokens:,}",
                    j.fmt(),
                ]
            )
    if not api:
        return []
    note = (
        "From the usage each API call returned, at live prices from the price table "
        f"({', '.join(prices.files)}; docs/cost.md): prompt tokens at the full input price, responses shared "
        "with another run counted in both, batch calls at live prices. local: weights run locally (no API "
        "price); unknown: an API model the table does not price."
    )
    return [
        Section(
            "cost",
            "Cost",
            [
                Paragraph(note),
                TableBlock(
                    [
                        "run",
                        "id",
                        "model tokens (in / out)",
                        "model cost",
                        "judge",
                        "judge tokens (in / out)",
                        "judge cost",
                    ],
                    rows,
                ),
            ],
            order=80,
        )
    ]
