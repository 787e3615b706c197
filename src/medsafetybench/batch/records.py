"""What the batch runner needs from a provider's batch API (`BatchProvider`), and the records that cross
that line.

A provider turns requests into request lines, submits a list of them as one batch, reports a batch's
state when polled, returns its results (one `LineResult` per custom id it can read, and a warning per
line it cannot: `read_result_lines`), and cancels. The limits (requests and bytes per batch) are an
attribute, so tests can use small ones; the runner splits at them. `providers.provider_for` picks the
provider of a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ..models.base import ChatRequest, Completion


@dataclass(frozen=True)
class RemoteState:
    """A batch as the provider reports it."""

    status: str
    """The provider's word: in_progress, completed, expired, cancelled (OpenAI); in_progress, canceling,
    ended (Anthropic)."""
    ended: bool
    """No request of it will change any more: results can be read."""
    done: int
    failed: int
    total: int


@dataclass(frozen=True)
class LineResult:
    """One request's outcome in a batch: a completion, or an error (the runner retries it)."""

    custom_id: str
    completion: Completion | None = None
    error: str | None = None


@dataclass(frozen=True)
class Limits:
    """The most one batch may hold."""

    max_requests: int
    max_bytes: int


class BatchProvider(Protocol):
    name: str
    limits: Limits

    def line(self, custom_id: str, request: ChatRequest) -> bytes:
        """The request as one JSONL line (its size counts against `limits.max_bytes`)."""
        ...

    async def submit(self, local_id: str, lines: Sequence[bytes]) -> tuple[str, str, str | None]:
        """Upload and create the batch; (provider batch id, status, input file id or None)."""
        ...

    async def find(self, local_id: str) -> str | None:
        """The provider id of a batch created earlier for `local_id` (a process killed between creating
        it and storing its id), or None when the provider cannot tell."""
        ...

    async def retrieve(self, remote_id: str) -> RemoteState: ...

    async def results(self, remote_id: str) -> tuple[list[LineResult], list[str]]:
        """The results of an ended batch, and one warning per line that could not be read."""
        ...

    async def cancel(self, remote_id: str) -> RemoteState: ...

    async def aclose(self) -> None: ...


def read_result_lines(
    content: bytes, parse: Callable[[bytes, str], LineResult | None], remote_id: str, what: str
) -> tuple[list[LineResult], list[str]]:
    """Every result line of a downloaded JSONL file, and one warning per line `parse` cannot read (its
    request gets no result, so the runner retries it)."""
    out: list[LineResult] = []
    warnings: list[str] = []
    for n, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        parsed = parse(raw, remote_id)
        if parsed is None:
            warnings.append(
                f"batch {remote_id}: {what} line {n} is not a valid result line (skipped; its request is retried)"
            )
        else:
            out.append(parsed)
    return out, warnings


class SDKBatches:
    """What both providers share: the model, the limits, and the SDK client made on first use (from the
    model's `sdk_client()`) and closed by `aclose`."""

    DEFAULT_LIMITS: ClassVar[Limits]

    def __init__(self, model: Any, limits: Limits | None = None) -> None:
        self.model = model
        self.limits = limits or self.DEFAULT_LIMITS
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.model.sdk_client()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
