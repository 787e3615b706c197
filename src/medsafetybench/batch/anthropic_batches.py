"""Anthropic Message Batches through the official SDK: `messages.batches.create`, poll, results.

A batch is a list of `{"custom_id": KEY, "params": {...}}` requests (the Messages API body the live
`anthropic:` backend sends), created in one call. Polling reads `processing_status` (`in_progress`,
`canceling`, `ended`) and the request counts. Results are the JSONL at the batch's `results_url`, read
line by line here (not with the SDK's decoder, which stops at the first unreadable line): `succeeded`
lines are parsed exactly as a live reply; `errored`, `canceled` and `expired` ones are errors the runner
retries; an unreadable line is reported and its request retried.

Message Batches take no metadata, so a process killed in the instant between the create call returning
and the batch id being stored cannot find that batch again (`find` returns None) and submits anew.

Limits (Anthropic's, 2025): 100,000 requests and 256 MB per batch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from ..models.anthropic_backend import AnthropicChatModel, anthropic_httpx, message_params, parse_message
from ..models.openai_http import Failure
from .records import Limits, LineResult, RemoteState, SDKBatches, read_result_lines

ANTHROPIC_LIMITS = Limits(max_requests=100_000, max_bytes=256 * 1024 * 1024)


class AnthropicBatches(SDKBatches):
    """Message Batches for one `anthropic:` model (the SDK client is made on first use)."""

    name = "anthropic"
    DEFAULT_LIMITS = ANTHROPIC_LIMITS
    model: AnthropicChatModel

    def line(self, custom_id: str, request: Any) -> bytes:
        return json.dumps(
            {"custom_id": custom_id, "params": message_params(self.model.model, request)}, ensure_ascii=False
        ).encode("utf-8")

    async def submit(self, local_id: str, lines: Sequence[bytes]) -> tuple[str, str, str | None]:
        batch = await self.client.messages.batches.create(requests=[json.loads(x) for x in lines])
        return batch.id, batch.processing_status, None

    async def find(self, local_id: str) -> str | None:
        return None  # Message Batches carry no metadata to recognise ours by

    @staticmethod
    def _state(batch: Any) -> RemoteState:
        c = batch.request_counts
        failed = c.errored + c.canceled + c.expired
        return RemoteState(
            batch.processing_status,
            batch.processing_status == "ended",
            c.succeeded,
            failed,
            c.processing + c.succeeded + failed,
        )

    async def retrieve(self, remote_id: str) -> RemoteState:
        return self._state(await self.client.messages.batches.retrieve(remote_id))

    async def cancel(self, remote_id: str) -> RemoteState:
        return self._state(await self.client.messages.batches.cancel(remote_id))

    async def results(self, remote_id: str) -> tuple[list[LineResult], list[str]]:
        batch = await self.client.messages.batches.retrieve(remote_id)
        if not batch.results_url:
            return [], [f"batch {remote_id}: no results_url although it ended"]
        resp = await self.client.get(
            batch.results_url, cast_to=anthropic_httpx().Response, options={"headers": {"Accept": "application/binary"}}
        )
        return read_result_lines(resp.content, parse_line, remote_id, "results")


def parse_line(raw: bytes, remote_id: str) -> LineResult | None:
    """One results line as a `LineResult`; None when it is not a readable result line."""
    try:
        d = json.loads(raw)
        cid, result = d["custom_id"], d["result"]
        kind = result["type"]
        if not isinstance(cid, str):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    if kind == "succeeded":
        try:
            completion, _ = parse_message(result.get("message"))
        except (Failure, ValueError, TypeError, AttributeError) as exc:
            return LineResult(cid, error=f"malformed result message: {exc}")
        return LineResult(cid, completion=dataclasses.replace(completion, batch=remote_id))
    if kind == "errored":
        err = result.get("error") or {}
        inner = err.get("error") if isinstance(err.get("error"), dict) else err
        return LineResult(cid, error=f"errored: {str(inner.get('message') or inner.get('type') or '')[:200]}")
    return LineResult(cid, error=str(kind))  # canceled | expired
