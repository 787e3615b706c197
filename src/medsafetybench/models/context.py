"""Flagging requests that do not fit a model's context window, before they are sent.

Policy (documented in docs/models.md): warn, do not cut. A request longer than the model can read
is almost always a mistake in the input file (a pasted document, a broken CSV quote), and cutting it
silently would score something the user did not ask; the warning names the items so the user can fix
or drop them, and the run goes on (servers reject or truncate such requests themselves; a failed
request is not stored and is retried by the next run).

The window comes from the model (`SupportsContextLength`): hf: reads `max_position_embeddings`,
openai: uses its `context_window` option (default 128k tokens; the API does not say), measured in
tokens exactly (hf) or estimated at 4 characters per token (openai). Requests far below the window
are not tokenized at all, so the check costs next to nothing on normal data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .base import ChatRequest
from .capabilities import SupportsContextLength

#: Tokens a prompt format may add around the messages; a request whose message text (in UTF-8 bytes)
#: plus this allowance fits the window cannot exceed it, so it is not tokenized.
TEMPLATE_ALLOWANCE = 512
SHOW = 3  # items named in a warning


@dataclass(frozen=True)
class Oversize:
    """One request that does not fit: its index, prompt tokens, and the window."""

    index: int
    prompt_tokens: int
    new_tokens: int
    window: int


def oversized(model: object, requests: Sequence[ChatRequest]) -> list[Oversize]:
    """Requests whose prompt plus `max_new_tokens` exceed the model's window (none when the model
    does not implement `SupportsContextLength` or its window is unknown)."""
    if not isinstance(model, SupportsContextLength):
        return []
    window = model.context_length()
    if not window:
        return []
    out = []
    for i, r in enumerate(requests):
        size = sum(len(m.content.encode("utf-8")) for m in r.messages)
        if size + TEMPLATE_ALLOWANCE + r.config.max_new_tokens <= window:
            continue
        n = model.prompt_tokens(r)
        if n + r.config.max_new_tokens > window:
            out.append(Oversize(i, n, r.config.max_new_tokens, window))
    return out


def length_warnings(
    model: object, requests: Sequence[ChatRequest], labels: Sequence[str], *, role: str = "--model"
) -> list[str]:
    """One-line warnings for requests that do not fit `model` (empty when all fit).

    Args:
        model: any model; only `SupportsContextLength` models are checked.
        requests: the requests as they will be sent.
        labels: one name per request (item ids), used in the message.
        role: what the model is, for the message (`--model`, `--judge`).
    """
    found = oversized(model, requests)
    if not found:
        return []
    window = found[0].window
    shown = ", ".join(f"{labels[o.index]} ({o.prompt_tokens:,} tokens)" for o in found[:SHOW])
    more = f" and {len(found) - SHOW} more" if len(found) > SHOW else ""
    identity = getattr(model, "identity", "the model")
    return [
        f"{len(found)} request(s) do not fit the {window:,}-token context of {role} {identity} "
        f"(prompt + max new tokens): {shown}{more}; they are sent as they are, and the server may "
        "reject or truncate them: shorten or drop those rows (openai: set the window with --context-window)"
    ]
