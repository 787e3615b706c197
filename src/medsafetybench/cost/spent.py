"""What a stored run cost: its tokens (the usage each API call returned, kept with every response and
judgement) priced by the table, the model and the judge apart.

The figure is the run's own calls at live prices: prompt tokens at the full input price (the store keeps
no prompt-cache hits, so a cached prompt is counted at full price), a response another run already paid
for counted again in this run, and calls made through a batch API counted at live prices too (the store
does not tell them apart). A local model or judge is "local"; an API model without a price "unknown".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..store import Store
from .pricing import LOCAL, PriceLookup, PriceTable, fmt_usd, load_prices


@dataclass(frozen=True)
class Spent:
    """One role's spend in a run."""

    role: str
    """`model` or `judge`."""
    identity: str
    prompt_tokens: int
    completion_tokens: int
    price: PriceLookup

    @property
    def usd(self) -> float | None:
        """USD at live prices (0.0 local, None unknown)."""
        return self.price.cost(self.prompt_tokens, self.completion_tokens)

    def fmt(self) -> str:
        """`$1.23`, `local` or `unknown`."""
        return fmt_usd(self.usd, self.price.status)

    def describe(self) -> str:
        """`$1.23 (12,345 in / 6,789 out tokens at $0.15 in / $0.60 out per 1M tokens (as of 2025-08))`."""
        tokens = f"{self.prompt_tokens:,} in / {self.completion_tokens:,} out tokens"
        if self.price.status == LOCAL:
            return f"local (no API price; {tokens})"
        return f"{self.fmt()} ({tokens} at {self.price.label()})"

    def to_dict(self) -> dict:
        return {
            "usd": self.usd,
            "price": self.price.status,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


def run_spent(
    model_identity: str, judge_identity: str, tokens: Mapping[str, int], prices: PriceTable | None = None
) -> tuple[Spent, Spent]:
    """The model's and the judge's spend in a run, from a summary's token counts.

    Args:
        model_identity: the run's model identity.
        judge_identity: the judge whose judgements are counted.
        tokens: `Summary.tokens` (response_prompt, response_completion, judge_prompt, judge_completion).
        prices: the table (default: `load_prices()`, the shipped one with $MEDSAFETY_PRICES on top).
    """
    prices = prices or load_prices()
    return (
        Spent(
            "model",
            model_identity,
            int(tokens.get("response_prompt", 0)),
            int(tokens.get("response_completion", 0)),
            prices.lookup(model_identity),
        ),
        Spent(
            "judge",
            judge_identity,
            int(tokens.get("judge_prompt", 0)),
            int(tokens.get("judge_completion", 0)),
            prices.lookup(judge_identity),
        ),
    )


def spent_cell(model: Spent, judge: Spent) -> str:
    """One table cell: `$1.23 / $0.40` (model / judge)."""
    return f"{model.fmt()} / {judge.fmt()}"


def run_tokens(store: Store, run_id: str, judge_identity: str | None = None) -> dict[str, int]:
    """A run's tokens as `Summary.tokens` counts them, read from the store without summarising."""
    out = {"response_prompt": 0, "response_completion": 0, "judge_prompt": 0, "judge_completion": 0}
    for r in store.run_rows(run_id, judge_identity):
        out["response_prompt"] += r.prompt_tokens or 0
        out["response_completion"] += r.completion_tokens or 0
        out["judge_prompt"] += r.judge_prompt_tokens or 0
        out["judge_completion"] += r.judge_completion_tokens or 0
    return out
