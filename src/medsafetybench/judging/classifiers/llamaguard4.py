"""Llama Guard 4 as a judge: `--judge llamaguard4:MODEL_SPEC` (the nine AMA principles as its categories)
or `--judge llamaguard4-mlc:MODEL_SPEC` (the checkpoint's default taxonomy).

Template: NOT reproduced here (`../shared/reference/classifiers/llama_guard_4.output.md`: no public
source holds it; `llama_guard_4.RECONSTRUCTED.txt` there is llama-stack's text in the Llama 4 chat
format, not byte-verified). Meta documents Llama Guard 4's prompt only through the chat template
that ships with `meta-llama/Llama-Guard-4-12B` (the model card, PurpleLlama Llama-Guard4/12B/MODEL_CARD.md
at f45e4adc, and llama.com's prompt-format page list its special tokens but not the full text), and we
could not read that file: the hub is unreachable here and no copy of it turned up in our sources
(searched 2026-11-29). So this judge renders each prompt with the checkpoint's own template, through
`tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
categories=..., excluded_category_keys=[])`, where messages are the request and the response as lists
of `{"type": "text", "text": ...}` parts (the Llama Guard 3 vision and 1B templates read text parts
that way and take `categories` / `excluded_category_keys`; that Llama Guard 4's does too is an
assumption we could not check). The rendered text is sent `verbatim` (apply_chat_template's
tokenization adds no special tokens). No golden string is pinned in the tests for this reason.

The tokenizer comes from the model's own folder for `hf:` / `vllm:` (a hub id there is loaded from
the local hub cache or the network). An `openai:` server holds its tokenizer where we cannot reach it,
so over `openai:` this judge needs the `tokenizer` option (a local copy of the checkpoint's tokenizer
files), which only the Python API can pass today (`load_judge("llamaguard4:openai:...", tokenizer=PATH)`).

Categories, parser, probability and 1-5 mapping are Llama Guard 3's (`llamaguard3.py`): for medical
cases the AMA principles as custom categories `S1`..`S9` (the value of `categories["S<n>"]` is
`<short name>.` + newline + the principle's text), mapped back to `P1`..`P9` in every verdict; the
taxonomy `mlc` passes no categories, so the template's defaults apply, and the parser accepts S1-S14.

The custom categories must reach the prompt: a template that ignores `categories` would render its
own list and the principles would vanish silently. So the AMA judge renders a probe case and refuses
to run (one-line `UserError`) unless every principle's `S<n>: <name>` line and text are in the
rendered prompt: in `check_spec` for a local `hf:` / `vllm:` folder (only its tokenizer files are
read, before a project or store is created), when it is built (any backend, `tokenizer=PATH`), and
again for each prompt. The template's digest is part of the identity (`lg4-ama-v2-<sha256[:12]>`; v1 coded
the principles P1-P9), so a checkpoint whose template differs is a different judge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

from ...errors import UserError
from ...models.base import ChatModel
from ...models.loading import load_model
from ...models.local_spec import local_dir
from ...models.spec import parse_spec
from ..base import JudgeCase
from ..registry import register_judge
from .base import ClassifierPrompt, load_tokenizer
from .categories import AMA_PROMPT_CATEGORIES, MLC_CATEGORIES, Category
from .llamaguard3 import _LlamaGuard


def load_chat_tokenizer(ref: str) -> Any:
    """The tokenizer at `ref` (a folder or hub id), which must carry a chat template."""
    tok = load_tokenizer(ref)
    if not getattr(tok, "chat_template", None):
        raise UserError(
            f"the tokenizer '{ref}' has no chat template: llamaguard4 renders its prompt with the "
            "template the Llama Guard 4 checkpoint ships"
        )
    return tok


PROBE = JudgeCase("probe request", "probe response")
"""The case rendered to check that custom categories reach the prompt."""


def render_lg4(tokenizer: Any, case: JudgeCase, categories: tuple[Category, ...] | None) -> str:
    """The checkpoint's chat template over [user: request, assistant: response] (text parts), with
    `categories` as the template's `categories` dict (None: the template's own list)."""
    messages = [
        {"role": "user", "content": [{"type": "text", "text": case.request}]},
        {"role": "assistant", "content": [{"type": "text", "text": case.response}]},
    ]
    extra: dict[str, Any] = {"excluded_category_keys": []}
    if categories is not None:
        extra["categories"] = {c.code: _entry(c) for c in categories}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)


def _entry(c: Category) -> str:
    """A category's value in the template's `categories` dict: name, then its text on the next line."""
    return c.name + (f"\n{c.description}" if c.description else "")


def check_categories(name: str, text: str, categories: tuple[Category, ...]) -> None:
    """Raise a one-line UserError unless every category's `CODE: name` line and text are in `text`."""
    missing = [c.code for c in categories if f"{c.code}: {_entry(c)}" not in text]
    if missing:
        raise UserError(
            f"{name}: the checkpoint's chat template ignored the custom categories ({', '.join(missing)} are "
            "not in the rendered prompt), so the AMA principles would not reach the model: use "
            "llamaguard4-mlc, or a tokenizer whose chat template reads `categories`"
        )


@register_judge("llamaguard4")
class LlamaGuard4(_LlamaGuard):
    """Llama Guard 4, the nine AMA principles as custom categories S1-S9, by the checkpoint's template."""

    NAME = "llamaguard4"
    VERSION = "lg4-ama-v2"
    OPTIONS: ClassVar[frozenset[str]] = _LlamaGuard.OPTIONS | {"tokenizer"}

    @classmethod
    def check_spec(cls, args: str) -> None:
        """The spec is valid and, for a local `hf:` / `vllm:` folder, its chat template takes the custom
        categories (only the tokenizer files are read), so a bad template fails before anything is made."""
        super().check_spec(args)
        spec = parse_spec(args)
        if cls.TAXONOMY == "ama" and spec.backend in ("hf", "vllm"):
            folder = local_dir(spec.name, "model path")
            if folder is not None:
                cls.check_template(load_chat_tokenizer(str(folder)))

    @classmethod
    def check_template(cls, tokenizer: Any) -> None:
        """The AMA categories reach the prompt `tokenizer`'s chat template renders (else UserError)."""
        check_categories(cls.NAME, render_lg4(tokenizer, PROBE, AMA_PROMPT_CATEGORIES), AMA_PROMPT_CATEGORIES)

    @classmethod
    def from_spec(cls, args: str, *, model_options: Mapping[str, Any], **options: Any) -> LlamaGuard4:
        """Load the model (prompt format `verbatim`) and the tokenizer whose chat template renders prompts."""
        cls.check_spec(args)
        spec = parse_spec(args)
        ref = options.pop("tokenizer", None)
        if ref is None:
            if spec.backend not in ("hf", "vllm"):
                raise UserError(
                    f"{cls.NAME} over {spec.backend}: needs the checkpoint's tokenizer files to render its "
                    "chat template: pass tokenizer=PATH (Python API), or serve the model with hf: / vllm:"
                )
            folder = local_dir(spec.name, "model path")
            ref = str(folder) if folder is not None else spec.name
        tokenizer = load_chat_tokenizer(str(ref))
        if cls.TAXONOMY == "ama":  # before the model is loaded
            cls.check_template(tokenizer)
        model = load_model(args, **cls.model_options(model_options))
        return cls(model, tokenizer=tokenizer, **options)

    def __init__(
        self, model: ChatModel, *, tokenizer: Any, logprobs: bool = True, max_new_tokens: int | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.template_digest = hashlib.sha256(str(tokenizer.chat_template).encode("utf-8")).hexdigest()[:12]
        super().__init__(model, logprobs=logprobs, max_new_tokens=max_new_tokens)
        self.build_prompts(PROBE)  # the categories reach the prompt

    def template_version(self) -> str:
        """`VERSION-<sha256 of the checkpoint's chat template, 12 hex digits>`."""
        return f"{self.VERSION}-{self.template_digest}"

    def render(self, case: JudgeCase, categories: tuple[Category, ...] | None) -> str:
        """The checkpoint's chat template for `case` (see `render_lg4`)."""
        return render_lg4(self.tokenizer, case, categories)

    def build_prompts(self, case: JudgeCase) -> list[ClassifierPrompt]:
        categories = self.categories_for(case)
        custom = categories if categories is AMA_PROMPT_CATEGORIES else None
        text = self.render(case, custom)
        if custom is not None:
            check_categories(self.NAME, text, custom)
        return [self.prompt(text, categories)]


@register_judge("llamaguard4-mlc")
class LlamaGuard4MLC(LlamaGuard4):
    """Llama Guard 4 with the categories its chat template lists by default (S1-S14 accepted)."""

    NAME = "llamaguard4-mlc"
    VERSION = "lg4-mlc-v2"
    TAXONOMY = "mlc"

    def categories_for(self, case: JudgeCase) -> tuple[Category, ...]:
        return MLC_CATEGORIES
