"""Optional capabilities a backend may have beyond `ChatModel`, as runtime-checkable Protocols.

Callers test for them with `isinstance(model, SupportsLogprobs)` and fall back (or refuse with a
`UserError`) when absent; no backend has to implement them.

- `SupportsLogprobs`: the log-probabilities of the first generated token, for classifier judges
  (Llama Guard's P("unsafe"), WildGuard, the HarmBench classifier). hf: (exact, from the logits) and
  openai: (from the API's `logprobs` / `top_logprobs`, so only among the top 20 tokens).
- `SupportsContextLength`: how many tokens the model can read and how long a request is, so long
  inputs are flagged before they are sent (`context.py`).
- `SupportsConnectionKey`: which server and credentials a model talks to, so limits can be shared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .base import ChatRequest


@dataclass(frozen=True)
class TokenLogprobs:
    """Log-probabilities at the first generated position of one request."""

    top: tuple[tuple[str, float], ...] = ()
    """The most likely first tokens as (token text, natural-log probability), most likely first."""
    candidates: dict[str, float | None] = field(default_factory=dict)
    """Each asked-for candidate -> log P(first token is that candidate), where a token counts as the
    candidate when its text, stripped of surrounding whitespace, equals the stripped candidate (so
    "unsafe" covers " unsafe" and "unsafe"); several such tokens are summed. None when the backend
    cannot tell (openai: the candidate is not among the top tokens the API returned)."""
    error: str | None = None
    """Set when the request failed for good; `top` and `candidates` are then empty."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def probability(self, candidate: str) -> float | None:
        """P(candidate) as a probability, or None when unknown."""
        lp = self.candidates.get(candidate)
        return None if lp is None else math.exp(lp)


def logsumexp(values: Iterable[float]) -> float | None:
    """log(sum(exp(v))) of the values, or None for none."""
    vals = list(values)
    if not vals:
        return None
    top = max(vals)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in vals))


def candidate_logprobs(pairs: Iterable[tuple[str, float]], candidates: Sequence[str]) -> dict[str, float | None]:
    """Map each candidate to the log-sum-exp of the (token, logprob) pairs whose stripped token text
    equals the stripped candidate (None when no pair matches)."""
    by_text: dict[str, list[float]] = {}
    for token, lp in pairs:
        by_text.setdefault(token.strip(), []).append(lp)
    return {c: logsumexp(by_text.get(c.strip(), ())) for c in candidates}


@runtime_checkable
class SupportsLogprobs(Protocol):
    """A model that can score the first token it would generate."""

    async def first_token_logprobs(
        self, requests: Sequence[ChatRequest], candidates: Sequence[str] = (), top_k: int = 20
    ) -> list[TokenLogprobs]:
        """For each request (its messages; its generation settings are ignored: this is one greedy
        step), the top `top_k` first tokens and the log-probabilities of `candidates` (see
        `TokenLogprobs`). Results come back in input order; a failed request has `error` set."""
        ...


@runtime_checkable
class SupportsContextLength(Protocol):
    """A model that knows its context window and can measure a request in tokens."""

    def context_length(self) -> int | None:
        """Tokens the model reads at most (prompt + generated), or None when unknown."""
        ...

    def prompt_tokens(self, request: ChatRequest) -> int:
        """Tokens of the request's prompt as the model would see it (an estimate where the backend
        has no tokenizer)."""
        ...


@runtime_checkable
class SupportsConnectionKey(Protocol):
    """A model behind a network service."""

    def connection_key(self) -> str:
        """Names the server and credentials (base URL + a hash of the key), never the key itself:
        models with equal keys share one concurrency limit."""
        ...
