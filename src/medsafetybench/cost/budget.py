"""`--max-cost`: a spend limit shared by a run's model and judges, enforced before each call is sent.

`BudgetedModel` wraps a priced `ChatModel` (the model under evaluation, or an LLM judge's model). Before
it sends a request it reserves the request's ceiling cost (`cost.estimate.ceiling_tokens` prompt tokens
plus `max_new_tokens` output tokens at the table's price); a request that does not fit in what is left
of the limit, counting every call in flight at its ceiling, is not sent: it comes back as a failed
`Completion` (error `BUDGET_ERROR`), which the store never keeps, so a re-run asks it again. When a
call returns, its reservation is replaced by its real cost from the usage the API reported.

The limit is for this process's spend: results already in the store cost nothing and are not counted,
so re-running with the same or a higher limit resumes where the last run stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models.base import ChatModel, ChatRequest, Completion, ResultCallback
from .estimate import ceiling_tokens
from .pricing import PRICED, PriceLookup, PriceTable, fmt_usd

BUDGET_ERROR = "not sent: --max-cost reached"
EXIT_COST = 5
"""Exit status of a run stopped by `--max-cost` (0-4 are taken; see study/results.py)."""


@dataclass
class Budget:
    """What may still be spent, what was spent (by role) and what is in flight."""

    limit: float
    """USD this process may spend."""
    prices: PriceTable
    """The table the calls are priced by."""
    spent: dict[str, float] = field(default_factory=lambda: {"model": 0.0, "judge": 0.0})
    reserved: float = 0.0
    refused: dict[str, int] = field(default_factory=lambda: {"model": 0, "judge": 0})
    """Requests not sent because they did not fit, by role."""

    @property
    def total_spent(self) -> float:
        return sum(self.spent.values())

    @property
    def stopped(self) -> bool:
        """True once any request was held back."""
        return any(self.refused.values())

    def reserve(self, amount: float) -> bool:
        """Reserve `amount` if spent + in flight + amount stays within the limit."""
        if self.total_spent + self.reserved + amount > self.limit:
            return False
        self.reserved += amount
        return True

    def settle(self, role: str, reserved: float, actual: float) -> None:
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent[role] = self.spent.get(role, 0.0) + actual

    def wrap(self, model: ChatModel, role: str, price: PriceLookup) -> ChatModel:
        """`model` under this budget when it is priced (local models cost nothing and stay as they are)."""
        return BudgetedModel(model, self, role, price) if price.status == PRICED else model

    def notes(self) -> list[str]:
        """What a stopped run says: the limit, the spend, what was held back, how to resume."""
        held = ", ".join(f"{n} {role}" for role, n in self.refused.items() if n)
        return [
            f"stopped at --max-cost {fmt_usd(self.limit)}: spent {fmt_usd(self.total_spent)} this time "
            f"(model {fmt_usd(self.spent['model'])}, judge {fmt_usd(self.spent['judge'])}); "
            f"{held} request(s) not sent. Every result is stored: re-run the same command with a higher "
            "--max-cost to make only the missing calls"
        ]


class BudgetedModel:
    """A `ChatModel` that sends only what the budget allows (same identity: the same cache keys)."""

    def __init__(self, inner: ChatModel, budget: Budget, role: str, price: PriceLookup) -> None:
        self.inner = inner
        self.budget = budget
        self.role = role
        self.price = price
        self.identity = inner.identity

    def __getattr__(self, name: str) -> Any:  # context_length, prompt_tokens, stream_slice, ...
        return getattr(self.inner, name)

    def _ceiling(self, request: ChatRequest) -> float:
        return self.price.cost(ceiling_tokens(request), request.config.max_new_tokens) or 0.0

    async def generate(
        self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
    ) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        while pending:
            admitted: list[tuple[int, float]] = []
            for i in pending:
                amount = self._ceiling(requests[i])
                if not self.budget.reserve(amount):
                    break
                admitted.append((i, amount))
            if not admitted:
                break
            pending = pending[len(admitted) :]

            settled: set[int] = set()

            def done(
                k: int,
                completion: Completion,
                admitted: list[tuple[int, float]] = admitted,
                settled: set[int] = settled,
            ) -> None:
                i, amount = admitted[k]
                if k in settled:
                    return
                settled.add(k)
                u = completion.usage
                self.budget.settle(self.role, amount, self.price.cost(u.prompt_tokens, u.completion_tokens) or 0.0)
                results[i] = completion
                if on_result:
                    on_result(i, completion)

            returned = await self.inner.generate([requests[i] for i, _ in admitted], on_result=done)
            for k, completion in enumerate(returned):  # a backend that did not call on_result for some
                done(k, completion)
        for i in pending:
            self.budget.refused[self.role] = self.budget.refused.get(self.role, 0) + 1
            results[i] = Completion("", error=BUDGET_ERROR)
            if on_result:
                on_result(i, results[i])
        return [r if r is not None else Completion("", error="no result") for r in results]

    async def aclose(self) -> None:
        await self.inner.aclose()
