"""The OpenAI Batch API through the official SDK: JSONL upload, `/v1/chat/completions` batches, results.

A batch is one uploaded JSONL file (`files.create`, purpose `batch`) of request lines
`{"custom_id": KEY, "method": "POST", "url": "/v1/chat/completions", "body": {...}}` (the body the live
`openai:` backend sends), then `batches.create` with a 24 h window and `metadata.medsafety_batch` = the
local batch id, so a process killed between creating the batch and storing its id finds it again
(`find`, over `batches.list`). Results come from the output file (one line per answered request, the
body a chat completion parsed exactly as a live reply) and the error file (failed, expired and
cancelled requests). A line that is not JSON is reported, never stored; its request is retried.

Limits (OpenAI's, 2025): 50,000 requests and 200 MB per input file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from ..models.openai_backend import OpenAIChatModel
from ..models.openai_http import Failure
from .records import Limits, LineResult, RemoteState, SDKBatches, read_result_lines

OPENAI_LIMITS = Limits(max_requests=50_000, max_bytes=200 * 1024 * 1024)
ENDPOINT = "/v1/chat/completions"
_ENDED = ("completed", "expired", "cancelled", "failed")


class OpenAIBatches(SDKBatches):
    """Batches for one `openai:` model (the SDK client is made on first use)."""

    name = "openai"
    DEFAULT_LIMITS = OPENAI_LIMITS
    model: OpenAIChatModel

    def line(self, custom_id: str, request: Any) -> bytes:
        body = self.model._params(request)
        return json.dumps(
            {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}, ensure_ascii=False
        ).encode("utf-8")

    async def submit(self, local_id: str, lines: Sequence[bytes]) -> tuple[str, str, str | None]:
        data = b"\n".join(lines) + b"\n"
        file = await self.client.files.create(file=(f"medsafety-{local_id}.jsonl", data), purpose="batch")
        batch = await self.client.batches.create(
            input_file_id=file.id, endpoint=ENDPOINT, completion_window="24h", metadata={"medsafety_batch": local_id}
        )
        return batch.id, batch.status, file.id

    async def find(self, local_id: str) -> str | None:
        async for batch in self.client.batches.list(limit=100):
            if (batch.metadata or {}).get("medsafety_batch") == local_id:
                return batch.id
        return None

    @staticmethod
    def _state(batch: Any) -> RemoteState:
        counts = batch.request_counts
        done, failed, total = (counts.completed, counts.failed, counts.total) if counts else (0, 0, 0)
        return RemoteState(batch.status, batch.status in _ENDED, done, failed, total)

    async def retrieve(self, remote_id: str) -> RemoteState:
        return self._state(await self.client.batches.retrieve(remote_id))

    async def cancel(self, remote_id: str) -> RemoteState:
        return self._state(await self.client.batches.cancel(remote_id))

    async def results(self, remote_id: str) -> tuple[list[LineResult], list[str]]:
        batch = await self.client.batches.retrieve(remote_id)
        out: list[LineResult] = []
        warnings: list[str] = []
        for kind, file_id in (("output file", batch.output_file_id), ("error file", batch.error_file_id)):
            if file_id:
                content = await self.client.files.content(file_id)
                lines, bad = read_result_lines(content.content, parse_line, remote_id, kind)
                out += lines
                warnings += bad
        return out, warnings


def parse_line(raw: bytes, remote_id: str) -> LineResult | None:
    """One output / error file line as a `LineResult`; None when it is not a readable result line."""
    try:
        d = json.loads(raw)
        cid = d["custom_id"]
        if not isinstance(cid, str):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    resp, err = d.get("response"), d.get("error")
    if isinstance(resp, dict) and resp.get("status_code") == 200:
        try:
            completion = OpenAIChatModel._parse(resp.get("body"))
        except (Failure, ValueError, TypeError, KeyError, AttributeError) as exc:
            return LineResult(cid, error=f"malformed result body: {exc}")
        return LineResult(cid, completion=dataclasses.replace(completion, batch=remote_id))
    if isinstance(err, dict):
        return LineResult(cid, error=f"{err.get('code') or 'error'}: {str(err.get('message') or '')[:200]}")
    status = resp.get("status_code") if isinstance(resp, dict) else None
    body = resp.get("body") if isinstance(resp, dict) else None
    detail = (
        body.get("error", {}).get("message") if isinstance(body, dict) and isinstance(body.get("error"), dict) else ""
    )
    return LineResult(cid, error=f"HTTP {status}: {str(detail)[:200]}")
