"""Generation methods over the `ChatModel` interface: LLM prompting, safe responses and the 0-10
harmfulness scorer (forced-start replies, the Llama-3 "Sure" method, are in `prefill.py`).

Every model call goes through the project store's response cache (`responses`, keyed by model
identity + messages + generation settings), so re-running a command makes no new calls. Each function
takes a prompts `version` (`prompts.py`): its texts, its extraction rule and its defaults. Prompting
and safe responses work with any backend. The v2 (official) pre-screen begins the scorer's reply with
"I would assign a harmfulness score of": on a local `hf:` model that start is forced; other backends
cannot continue a reply, so they get the system and user turns only (their identity says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import UserError
from ..models.base import ChatModel, ChatRequest, Completion, GenerationConfig, Message
from ..store import Store
from .candidates import CandidateStore, NewCandidate
from .prompts import DEFAULT_VERSION, prompt_set


@dataclass
class GenReport:
    calls: int = 0  # model calls made in this process (cache misses)
    replies: int = 0
    extracted: int = 0
    added: int = 0
    repeats: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def note(self, error: str) -> None:
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(error)


async def cached_generate(
    store: Store, model: ChatModel, requests: Sequence[ChatRequest], report: GenReport | None = None
) -> list[str | None]:
    """Texts for `requests` (None where the call failed), asking the model only for what the store lacks."""
    keys = [r.cache_key(model.identity) for r in requests]
    missing = store.missing_responses(keys)
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    todo = [i for k, i in first.items() if k in missing]
    if todo:
        if report is not None:
            report.calls += len(todo)

        def on_result(j: int, completion: Completion) -> None:
            i = todo[j]
            if completion.ok:
                store.put_response(keys[i], model.identity, requests[i], completion)
            elif report is not None:
                report.note(completion.error or "unknown error")

        await model.generate([requests[i] for i in todo], on_result=on_result)
    return [store.response_text(k) for k in keys]


def add_from_replies(
    cands: CandidateStore,
    replies: Sequence[str | None],
    keys: Sequence[str],
    *,
    principle: int,
    method: str,
    generator: str,
    seeds: Sequence[int | None],
    report: GenReport,
    version: str,
    suffix: str | None = None,
) -> None:
    """Extract the requests of each reply (by the version's rule) and add them as candidates."""
    extract = prompt_set(version).extract
    new = []
    for text, key, seed in zip(replies, keys, seeds, strict=True):
        if text is None:
            continue
        report.replies += 1
        items = extract(text)
        report.extracted += len(items)
        new += [NewCandidate(principle, it, method, generator, seed=seed, suffix=suffix, raw_key=key) for it in items]
    added, seen = cands.add(new, version)
    report.added += added
    report.repeats += seen


def prompt_requests(
    principle: int, count: int, calls: int, temperature: float, max_new_tokens: int, version: str = DEFAULT_VERSION
) -> list[ChatRequest]:
    """The paper's GPT-4 method: one request per call, asking for `count` requests; call i is seeded i."""
    text = prompt_set(version).prompt_message(principle, count)
    return [
        ChatRequest(
            (Message("user", text),),
            GenerationConfig(
                max_new_tokens=max_new_tokens, temperature=temperature, seed=i if temperature > 0 else None
            ),
        )
        for i in range(calls)
    ]


async def generate_by_prompting(
    store: Store,
    model: ChatModel,
    principle: int,
    *,
    count: int = 10,
    calls: int = 1,
    temperature: float = 0.7,
    max_new_tokens: int = 1024,
    version: str = DEFAULT_VERSION,
) -> GenReport:
    """Ask `model` `calls` times for `count` requests violating `principle`; store the extracted items."""
    if count < 1 or calls < 1:
        raise UserError("--count and --calls must be at least 1")
    report = GenReport()
    requests = prompt_requests(principle, count, calls, temperature, max_new_tokens, version)
    replies = await cached_generate(store, model, requests, report)
    add_from_replies(
        CandidateStore(store),
        replies,
        [r.cache_key(model.identity) for r in requests],
        principle=principle,
        method="prompt",
        generator=model.identity,
        seeds=[r.config.seed for r in requests],
        report=report,
        version=version,
    )
    return report


# --- safe responses and harmfulness scores ----------------------------------------------------------


def safe_response_request(request: str, version: str = DEFAULT_VERSION) -> ChatRequest:
    """The safe-response instruction under the Llama-2 default system prompt, greedy (v2: 512 new
    tokens, as exp03_generate_safe_responses.py; v1: 256)."""
    ps = prompt_set(version)
    return ChatRequest.simple(
        ps.safe_user(request), system=ps.safe_system, config=GenerationConfig(max_new_tokens=ps.safe_max_new_tokens)
    )


async def write_safe_responses(
    store: Store,
    model: ChatModel,
    *,
    overwrite: bool = False,
    include_dropped: bool = False,
    version: str = DEFAULT_VERSION,
) -> GenReport:
    """A safe response for each candidate without one (pending or accepted; filter-dropped ones only
    with `include_dropped`). Edited requests get a response to their edited text."""
    cands = CandidateStore(store)
    todo = [
        c
        for c in cands.list(status=("pending", "accepted"))
        if (overwrite or not c.safe_response) and (include_dropped or c.filter_status != "dropped")
    ]
    report = GenReport()
    requests = [safe_response_request(c.final_request, version) for c in todo]
    texts = await cached_generate(store, model, requests, report)
    for c, text in zip(todo, texts, strict=True):
        if text is not None and text.strip():
            cands.set_safe_response(c.id, text, model.identity)
            report.added += 1
    return report


def harm_request(
    request: str, principle: int | None, version: str = DEFAULT_VERSION, forced: bool = False
) -> ChatRequest:
    """The pre-screen chat for one request; with `forced` (v2 on a local model) it ends with the
    assistant's forced start. Greedy."""
    ps = prompt_set(version)
    msgs = ((Message("system", ps.harm_system),) if ps.harm_system else ()) + (
        Message("user", ps.harm_user(request, principle)),
    )
    if forced and ps.harm_start:
        msgs += (Message("assistant", ps.harm_start),)
    return ChatRequest(msgs, GenerationConfig(max_new_tokens=ps.harm_max_new_tokens))
