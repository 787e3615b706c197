"""Replies whose beginning we write ourselves (a "forced start"), on a local `hf:` model: the paper's
Llama-3 method (reply forced to begin "Sure," in v1, "Sure!" in v2) and the official 0-10 pre-screen
(reply forced to begin "I would assign a harmfulness score of").

A forced-start request is a `ChatRequest` whose last message is the assistant's start. It is rendered
one of two ways:

- `model`: the chat without the start, in the model's prompt format (`--prompt-format`), then the start;
- `llama3`: the official code's literal Llama-3 text (`prompts_official.llama3_literal`, a newline after
  each `<|eot_id|>`), tokenised without adding special tokens, as `generate_prompts.py` and
  `filter_harmful.py` do.

`auto` picks `llama3` for v2 prompts when the tokenizer knows `<|start_header_id|>` (a Llama-3
tokenizer), else `model`; v1 always used `model`. Replies are cached in the store's response cache
under the model identity plus `|prefill` (model rendering, as 0.1.0 stored them) or `|prefill:llama3`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..models.base import ChatRequest, Completion, GenerationConfig, Message, Usage
from ..store import Store
from . import prompts_official as official
from .candidates import CandidateStore
from .methods import GenReport, add_from_replies
from .prompts import DEFAULT_VERSION, V1, check_version, prefill_goal, prompt_set

RENDERS = ("auto", "model", "llama3")


def resolve_render(hf_model: Any, render: str, version: str) -> str:
    """`model` or `llama3` for this model and prompts version (see module docstring)."""
    if render not in RENDERS:
        raise UserError(f"--render '{render}' is unknown; use one of {', '.join(RENDERS)}")
    if render != "auto":
        return render
    if version == V1:
        return "model"
    return "llama3" if official.LLAMA3_MARKER in hf_model.tokenizer.get_vocab() else "model"


def forced_identity(hf_model: Any, render: str) -> str:
    return hf_model.identity + ("|prefill" if render == "model" else f"|prefill:{render}")


def prefill_prompt_ids(hf_model: Any, request: ChatRequest, render: str = "model") -> list[int]:
    """Token ids of the rendered chat followed by the forced start (the last message)."""
    from ..models.formats import encode_prompt, render_prompt

    *chat, start = request.messages
    if start.role != "assistant":
        raise ValueError("a forced-start request ends with the assistant's start")
    if render == "llama3":
        system = chat[0].content if chat and chat[0].role == "system" else ""
        text = official.llama3_literal(system, chat[-1].content, start.content)
        return list(hf_model.tokenizer(text, add_special_tokens=False)["input_ids"])
    text = render_prompt(hf_model.prompt_format, chat, hf_model.tokenizer)
    return encode_prompt(hf_model.tokenizer, text + start.content)


def prefill_complete(hf_model: Any, request: ChatRequest, render: str = "model") -> Completion:
    """Generate the continuation of the forced start; the completion's text is start + continuation."""
    import torch
    import transformers

    ids = prefill_prompt_ids(hf_model, request, render)
    cfg, tok, eos = request.config, hf_model.tokenizer, hf_model.eos_ids()
    # A fresh config: the checkpoint's own sampling defaults never leak in.
    gen = transformers.GenerationConfig(
        max_new_tokens=cfg.max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=eos or None,
        do_sample=cfg.temperature > 0,
    )
    if cfg.temperature > 0:
        gen.temperature, gen.top_p, gen.top_k = cfg.temperature, cfg.top_p, 0
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
    x = torch.tensor([ids], device=hf_model.device)
    with torch.inference_mode():
        out = hf_model.model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gen)
    new = out[0, len(ids) :].tolist()
    stop = next((k for k, t in enumerate(new) if t in eos), None)
    new = new if stop is None else new[:stop]
    text = request.messages[-1].content + tok.decode(new, skip_special_tokens=True)
    return Completion(text=text, usage=Usage(len(ids), len(new)), finish_reason="length" if stop is None else "stop")


async def forced_generate(
    store: Store, hf_model: Any, requests: Sequence[ChatRequest], render: str, report: GenReport | None = None
) -> tuple[list[str | None], list[str]]:
    """(texts, cache keys) for forced-start requests, generating only what the store lacks."""
    identity = forced_identity(hf_model, render)
    keys = [r.cache_key(identity) for r in requests]
    missing = store.missing_responses(keys)
    for req, key in zip(requests, keys, strict=True):
        if key in missing:
            if report is not None:
                report.calls += 1
            completion = await asyncio.to_thread(prefill_complete, hf_model, req, render)
            store.put_response(key, identity, req, completion)
            missing.discard(key)
    return [store.response_text(k) for k in keys], keys


def prefill_request(
    principle: int,
    count: int | None,
    config: GenerationConfig,
    *,
    version: str = DEFAULT_VERSION,
    goal_set: str = "prompts",
    goals_file: str | Path | None = None,
) -> ChatRequest:
    """The chat with the assistant turn already begun (the last message)."""
    ps = prompt_set(version)
    if version == V1:
        goal = prefill_goal(principle, count or 10)
    else:
        if count is not None:
            raise UserError(
                "--count: the official goals ask for twenty requests; use --goals FILE for other goals "
                "(or --prompts-version msb-gen-v1)"
            )
        goal = official.goal_for(principle, goal_set, goals_file).goal
    return ChatRequest(
        (Message("system", ps.prefill_system), Message("user", goal), Message("assistant", ps.prefill_start)), config
    )


async def generate_by_prefill(
    store: Store,
    hf_model: Any,
    principle: int,
    *,
    count: int | None = None,
    calls: int = 1,
    temperature: float | None = None,
    top_p: float | None = None,
    max_new_tokens: int | None = None,
    version: str = DEFAULT_VERSION,
    goal_set: str = "prompts",
    goals_file: str | Path | None = None,
    render: str = "auto",
) -> GenReport:
    """The paper's Llama-3 method on a loaded `HFChatModel`. Unset settings take the version's
    defaults: v1 temperature 0.7, 1024 new tokens; v2 the official run's 0.6 / top-p 0.9 / 1500 tokens."""
    check_version(version)
    if not hasattr(hf_model, "tokenizer") or not hasattr(hf_model, "prompt_format"):
        raise UserError("prefill needs a local model: use --generator hf:PATH")
    if calls < 1 or (count is not None and count < 1):
        raise UserError("--count and --calls must be at least 1")
    hf_model.load()
    v1 = version == V1
    temperature = (0.7 if v1 else official.PREFILL_TEMPERATURE) if temperature is None else temperature
    top_p = (1.0 if v1 else official.PREFILL_TOP_P) if top_p is None else top_p
    max_new_tokens = (1024 if v1 else official.PREFILL_MAX_NEW_TOKENS) if max_new_tokens is None else max_new_tokens
    if v1 and goals_file is not None:
        raise UserError("--goals: goal files are for the official texts; drop --prompts-version msb-gen-v1")
    mode = resolve_render(hf_model, render, version)
    chat = prefill_request(
        principle, count, GenerationConfig(), version=version, goal_set=goal_set, goals_file=goals_file
    ).messages
    requests = [
        ChatRequest(
            chat,
            GenerationConfig(
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p if temperature > 0 else 1.0,
                seed=i if temperature > 0 else None,
            ),
        )
        for i in range(calls)
    ]
    report = GenReport()
    replies, keys = await forced_generate(store, hf_model, requests, mode, report)
    add_from_replies(
        CandidateStore(store),
        replies,
        keys,
        principle=principle,
        method="prefill",
        generator=forced_identity(hf_model, mode),
        seeds=[r.config.seed for r in requests],
        report=report,
        version=version,
    )
    return report
