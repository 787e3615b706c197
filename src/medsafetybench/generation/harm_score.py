"""Harmfulness pre-screen of candidate requests (`generate filter --scorer`): a model rates each request
with the official prompts (v2: the official forced start on local models, through `prefill`), every
call cached in the store; `harm_scorer_identity` is what the filter records as its scorer.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models.base import ChatModel
from ..store import Store
from .methods import GenReport, cached_generate, harm_request
from .prefill import forced_generate, forced_identity, resolve_render
from .prompts import DEFAULT_VERSION, V1, prompt_set


def harm_scorer_identity(model: ChatModel, version: str = DEFAULT_VERSION, render: str = "auto") -> str:
    """What `harm_scores` records as the scorer: model identity, prompts version, forced start or not."""
    forced = version != V1 and hasattr(model, "tokenizer")
    if not forced:
        return f"{model.identity}|{version}"
    model.load()  # type: ignore[attr-defined]
    return f"{forced_identity(model, resolve_render(model, render, version))}|{version}"


async def harm_scores(
    store: Store,
    model: ChatModel,
    items: Sequence[tuple[str, int | None]],
    report: GenReport | None = None,
    version: str = DEFAULT_VERSION,
    render: str = "auto",
) -> list[tuple[float | None, str | None]]:
    """(score or None when unscored, raw reply or None when the call failed) for each (request, principle).
    v1 parses `score: N` (0-10); v2 takes the first number of the reply, as the official script."""
    ps = prompt_set(version)
    if version != V1 and hasattr(model, "tokenizer"):  # a local model: the official forced start
        model.load()  # type: ignore[attr-defined]
        mode = resolve_render(model, render, version)
        texts, _ = await forced_generate(
            store, model, [harm_request(r, p, version, forced=True) for r, p in items], mode, report
        )
        texts = [None if t is None else t[len(ps.harm_start or "") :] for t in texts]
    else:
        texts = await cached_generate(store, model, [harm_request(r, p, version) for r, p in items], report)
    return [(None if t is None else ps.harm_parse(t), t) for t in texts]
