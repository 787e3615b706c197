"""Generation methods over the `ChatModel` interface: LLM prompting, forced-"Sure" replies (prefill),
safe responses and the 0-10 harmfulness scorer.

Every model call goes through the project store's response cache (`responses`, keyed by model
identity + messages + generation settings), so re-running a command makes no new calls. Prompting
and safe responses work with any backend; prefill needs a local `hf:` model, because it writes the
start of the assistant turn itself: the chat is rendered with the model's prompt format, `Sure,` is
appended as the beginning of the reply, and the model continues from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import UserError
from ..models.base import ChatModel, ChatRequest, Completion, GenerationConfig, Message, Usage
from ..principles import LLAMA2_DEFAULT_SYSTEM_PROMPT
from ..store import Store
from .candidates import CandidateStore, NewCandidate
from .extract import extract_items
from .prompts import (
    PREFILL_START,
    PREFILL_SYSTEM_PROMPT,
    PROMPTS_VERSION,
    harm_scorer_message,
    parse_harm_score,
    prefill_goal,
    prompt_method_message,
    safe_response_message,
)


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


async def cached_generate(store: Store, model: ChatModel, requests: Sequence[ChatRequest],
                          report: GenReport | None = None) -> list[str | None]:
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


def _add_from_replies(cands: CandidateStore, replies: Sequence[str | None], keys: Sequence[str],
                      *, principle: int, method: str, generator: str, seeds: Sequence[int | None],
                      report: GenReport, suffix: str | None = None) -> None:
    new = []
    for text, key, seed in zip(replies, keys, seeds, strict=True):
        if text is None:
            continue
        report.replies += 1
        items = extract_items(text)
        report.extracted += len(items)
        new += [NewCandidate(principle, it, method, generator, seed=seed, suffix=suffix, raw_key=key)
                for it in items]
    added, seen = cands.add(new, PROMPTS_VERSION)
    report.added += added
    report.repeats += seen


def prompt_requests(principle: int, count: int, calls: int, temperature: float,
                    max_new_tokens: int) -> list[ChatRequest]:
    """The paper's GPT-4 method: one request per call, asking for `count` requests; call i is seeded i."""
    text = prompt_method_message(principle, count)
    return [ChatRequest((Message("user", text),),
                        GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature,
                                         seed=i if temperature > 0 else None))
            for i in range(calls)]


async def generate_by_prompting(store: Store, model: ChatModel, principle: int, *, count: int = 10,
                                calls: int = 1, temperature: float = 0.7,
                                max_new_tokens: int = 1024) -> GenReport:
    """Ask `model` `calls` times for `count` requests violating `principle`; store the extracted items."""
    if count < 1 or calls < 1:
        raise UserError("--count and --calls must be at least 1")
    report = GenReport()
    requests = prompt_requests(principle, count, calls, temperature, max_new_tokens)
    replies = await cached_generate(store, model, requests, report)
    _add_from_replies(CandidateStore(store), replies, [r.cache_key(model.identity) for r in requests],
                      principle=principle, method="prompt", generator=model.identity,
                      seeds=[r.config.seed for r in requests], report=report)
    return report


# --- prefill (forced "Sure") -------------------------------------------------------------------------

def prefill_request(principle: int, count: int, config: GenerationConfig,
                    system: str = PREFILL_SYSTEM_PROMPT, start: str = PREFILL_START) -> ChatRequest:
    """The chat with the assistant turn already begun by `start` (the last message)."""
    return ChatRequest((Message("system", system), Message("user", prefill_goal(principle, count)),
                        Message("assistant", start)), config)


def prefill_prompt_ids(hf_model, request: ChatRequest) -> list[int]:
    """Token ids of the rendered chat (up to the generation prompt) followed by the forced start."""
    from ..models.formats import encode_prompt, render_prompt

    *chat, start = request.messages
    if start.role != "assistant":
        raise ValueError("a prefill request ends with the assistant's forced start")
    text = render_prompt(hf_model.prompt_format, chat, hf_model.tokenizer)
    return encode_prompt(hf_model.tokenizer, text + start.content)


def prefill_complete(hf_model, request: ChatRequest) -> Completion:
    """Generate the continuation of the forced start; the completion's text is start + continuation."""
    import torch
    import transformers

    ids = prefill_prompt_ids(hf_model, request)
    cfg, tok, eos = request.config, hf_model.tokenizer, hf_model.eos_ids()
    # A fresh config: the checkpoint's own sampling defaults never leak in.
    gen = transformers.GenerationConfig(max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id,
                                        eos_token_id=eos or None, do_sample=cfg.temperature > 0)
    if cfg.temperature > 0:
        gen.temperature, gen.top_p, gen.top_k = cfg.temperature, cfg.top_p, 0
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
    x = torch.tensor([ids], device=hf_model.device)
    with torch.inference_mode():
        out = hf_model.model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gen)
    new = out[0, len(ids):].tolist()
    stop = next((k for k, t in enumerate(new) if t in eos), None)
    new = new if stop is None else new[:stop]
    text = request.messages[-1].content + tok.decode(new, skip_special_tokens=True)
    return Completion(text=text, usage=Usage(len(ids), len(new)), finish_reason="length" if stop is None else "stop")


async def generate_by_prefill(store: Store, hf_model, principle: int, *, count: int = 10, calls: int = 1,
                              temperature: float = 0.7, max_new_tokens: int = 1024) -> GenReport:
    """The paper's Llama-3 method on a loaded `HFChatModel` (see module docstring)."""
    if not hasattr(hf_model, "tokenizer") or not hasattr(hf_model, "prompt_format"):
        raise UserError("prefill needs a local model: use --generator hf:PATH")
    hf_model.load()
    report = GenReport()
    identity = hf_model.identity + "|prefill"
    requests = [prefill_request(principle, count, GenerationConfig(
        max_new_tokens=max_new_tokens, temperature=temperature, seed=i if temperature > 0 else None))
        for i in range(calls)]
    keys = [r.cache_key(identity) for r in requests]
    missing = store.missing_responses(keys)
    for req, key in zip(requests, keys, strict=True):
        if key in missing:
            report.calls += 1
            completion = await asyncio.to_thread(prefill_complete, hf_model, req)
            store.put_response(key, identity, req, completion)
    replies = [store.response_text(k) for k in keys]
    _add_from_replies(CandidateStore(store), replies, keys, principle=principle, method="prefill",
                      generator=identity, seeds=[r.config.seed for r in requests], report=report)
    return report


# --- safe responses and harmfulness scores ----------------------------------------------------------

def safe_response_request(request: str, max_new_tokens: int = 256) -> ChatRequest:
    """The paper's instruction under the Llama-2 default system prompt, greedy."""
    return ChatRequest.simple(safe_response_message(request), system=LLAMA2_DEFAULT_SYSTEM_PROMPT,
                              config=GenerationConfig(max_new_tokens=max_new_tokens))


async def write_safe_responses(store: Store, model: ChatModel, *, overwrite: bool = False,
                               include_dropped: bool = False) -> GenReport:
    """A safe response for each candidate without one (pending or accepted; filter-dropped ones only
    with `include_dropped`). Edited requests get a response to their edited text."""
    cands = CandidateStore(store)
    todo = [c for c in cands.list(status=("pending", "accepted"))
            if (overwrite or not c.safe_response) and (include_dropped or c.filter_status != "dropped")]
    report = GenReport()
    requests = [safe_response_request(c.final_request) for c in todo]
    texts = await cached_generate(store, model, requests, report)
    for c, text in zip(todo, texts, strict=True):
        if text is not None and text.strip():
            cands.set_safe_response(c.id, text, model.identity)
            report.added += 1
    return report


def harm_request(request: str, principle: int | None) -> ChatRequest:
    return ChatRequest.simple(harm_scorer_message(request, principle), config=GenerationConfig(max_new_tokens=32))


async def harm_scores(store: Store, model: ChatModel, items: Sequence[tuple[str, int | None]],
                      report: GenReport | None = None) -> list[tuple[float | None, str | None]]:
    """(score 0-10 or None when unscored, raw reply or None when the call failed) for each (request, principle)."""
    texts = await cached_generate(store, model, [harm_request(r, p) for r, p in items], report)
    return [(None if t is None else parse_harm_score(t), t) for t in texts]
