"""The cost options of `medsafety eval` and `medsafety study run` (`--dry-run`, `--max-cost`, `--prices`)
and what they do before a run starts: print the estimate, or check the limit and hand back a `Budget`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..cli_common import err, out
from ..study.spec import Study
from .budget import Budget
from .estimate import (
    ESTIMATE_COLUMNS,
    StudyEstimate,
    check_max_cost,
    estimate_notes,
    estimate_rows,
    estimate_study,
)
from .pricing import load_prices

DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the calls the store already answers, the calls it would make (model and judge), "
        "their estimated tokens and cost (live and batched), and stop: nothing is called or created (docs/cost.md).",
    ),
]
MaxCostOpt = Annotated[
    float | None,
    typer.Option(
        "--max-cost",
        help="Stop before this process's API spend (USD) would pass this, counting calls in flight at "
        "their ceiling; exit status 5; a re-run resumes from the store. Refused for models without a price.",
    ),
]
PricesOpt = Annotated[
    Path | None,
    typer.Option(
        "--prices", help="A TOML price table applied over the shipped one (else $MEDSAFETY_PRICES; docs/cost.md)."
    ),
]


def estimate_json(est: StudyEstimate) -> dict:
    """The estimate as JSON: one entry per stage, and the totals (USD; null where a price is unknown)."""
    return {
        "n_items": est.n_items,
        "price_files": list(est.price_files),
        "local_judges": list(est.local_judges),
        "stages": [
            {
                "role": s.role,
                "name": s.name,
                "spec": s.spec,
                "needed": s.needed,
                "stored": s.stored,
                "calls": s.calls,
                "prompt_tokens": s.prompt_tokens,
                "prompt_tokens_method": s.method,
                "output_tokens_max_per_call": s.out_ceiling,
                "output_tokens_typical_per_call": s.out_typical,
                "typical_from": s.typical_n,
                "price": s.price.status,
                "cost_live_max": s.cost(typical=False),
                "cost_live_typical": s.cost(typical=True),
                "cost_batch_max": s.cost(typical=False, batch=True),
                "cost_batch_typical": s.cost(typical=True, batch=True),
            }
            for s in est.stages
        ],
        "total": {
            "live_max": est.total(typical=False),
            "live_typical": est.total(typical=True),
            "batch_max": est.total(typical=False, batch=True),
            "batch_typical": est.total(typical=True, batch=True),
        },
    }


def print_estimate(est: StudyEstimate, title: str) -> None:
    from ..report.console import fit_table

    out.print(fit_table(title, ESTIMATE_COLUMNS, estimate_rows(est), out.width, right=(3, 4, 5)))
    for line in estimate_notes(est):
        out.print(escape(line), soft_wrap=True)


def before_run(
    study: Study,
    project: Path | None,
    *,
    only: Sequence[str] | None,
    dry_run: bool,
    max_cost: float | None,
    prices: Path | None,
    as_json: bool,
) -> Budget | None:
    """For `--dry-run`: print the estimate and exit 0. For `--max-cost`: refuse an unknown price or a
    limit below one call (a `UserError`, before anything is created) and return the run's `Budget`.
    Otherwise nothing (None). The store is only read, and only when it exists."""
    if not dry_run and max_cost is None:
        return None
    from ..store import project_db_path, project_dir

    table = load_prices(prices)
    db = project_db_path(project_dir(project))
    est = estimate_study(study, db, table, only=only)
    if dry_run:
        if as_json:
            print(json.dumps(estimate_json(est), indent=2))
        else:
            where = str(db) if db.exists() else f"{db} (not created yet: nothing stored)"
            print_estimate(
                est, f"Dry run, nothing called: {study.items.describe()} ({est.n_items} items); store {where}"
            )
        if max_cost is not None:
            check_max_cost(est, max_cost)
            err.print(f"--max-cost {max_cost:g}: accepted (every price known, one call fits)")
        raise typer.Exit(0)
    assert max_cost is not None
    check_max_cost(est, max_cost)
    return Budget(max_cost, table)
