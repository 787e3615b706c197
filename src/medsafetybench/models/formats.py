"""Prompt formats: how a chat (`Sequence[Message]`) becomes the text a local model reads.

The default, `chat`, is the tokenizer's own chat template (what the model's authors ship). The paper's
exact prompts are the `paper-*` formats (`paper_formats.py`; `paper` picks one by model family). The
other names are each family's own chat format, for prompting a model that ships no template; they
are NOT the prompts the MedSafetyBench paper used (docs/paper-fidelity.md compares them):

    chat       the tokenizer's chat template, with the generation prompt appended
    paper      the paper's prompt for the model's family: paper-llama2, paper-mistral, paper-vicuna,
               paper-medalpaca, paper-med42, paper-pythia (exact strings of the official exp01 code)
    llama2     Llama-2-chat `<s>[INST] <<SYS>>...<</SYS>> ... [/INST]`, the request wrapped as
               `Question: ...\nAnswer:` (this project's own variant; the paper's is paper-llama2)
    mistral    Mistral-Instruct's `[INST] ... [/INST]` (no system role: it leads the first turn)
    vicuna     Vicuna v1.1 (`SYSTEM USER: ... ASSISTANT:`), also used by several medical fine-tunes
    medalpaca  medAlpaca's own Context/Question/Answer template
    med42      Med42's model-card `<|system|>: / <|prompter|>: / <|assistant|>:` template
    alpaca     the Stanford Alpaca template, the one the paper's LoRA safety fine-tuning trained with
    raw        the user text alone (the tokenizer adds its special tokens, e.g. `<s>`, unless the text
               already starts with the bos token)
    verbatim   the user text alone, tokenized exactly as it stands: no special tokens are added (for
               prompts that carry their own, e.g. the classifier judges' templates)

The names and renderings of the family formats are unchanged since they were introduced, so a
stored model identity (`...|fmt=llama2|...`) keeps its meaning.

`render_prompt(fmt, messages, tokenizer)` returns text; `encode_prompt(tokenizer, text, fmt)` turns it
into token ids (no second `<s>` when the text already starts with one; paper formats exactly as the
paper's `tokenizer(prompt)`); `decode_reply` and `finish_reply` turn generated ids back into the
response (for paper formats, the paper's cut). Backends resolve `paper` with `resolve_format` first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import UserError
from .base import Message
from .paper_formats import (
    PAPER_AUTO,
    PAPER_FORMATS,
    is_paper_format,
    paper_completion,
    paper_prompt_ids,
    paper_response,
    resolve_paper_format,
)

VICUNA_DEFAULT_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The "
    "assistant gives helpful, detailed, and polite answers to the user's questions."
)
ALPACA_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)

Formatter = Callable[[Sequence[Message], Any], str]


def _split(messages: Sequence[Message]) -> tuple[str | None, list[Message]]:
    """(system text or None, remaining turns); checks the chat ends with a user turn."""
    msgs = list(messages)
    system = None
    if msgs and msgs[0].role == "system":
        system, msgs = msgs[0].content, msgs[1:]
    if not msgs or msgs[-1].role != "user":
        raise UserError(
            "a prompt must end with a user message (got roles: " + ", ".join(m.role for m in messages) + ")"
        )
    for m in msgs:
        if m.role not in ("user", "assistant"):
            raise UserError(f"message role '{m.role}' is not allowed here: use system (first), user or assistant")
    return system, msgs


def _pairs(turns: list[Message]) -> list[tuple[str, str | None]]:
    """[(user, assistant-or-None), ...] from alternating turns ending in a user turn."""
    out: list[tuple[str, str | None]] = []
    for m in turns:
        if m.role == "user":
            out.append((m.content, None))
        elif out and out[-1][1] is None:
            out[-1] = (out[-1][0], m.content)
        else:
            raise UserError("assistant messages must follow a user message in this prompt format")
    return out


def format_chat(messages: Sequence[Message], tokenizer: Any = None) -> str:
    """The tokenizer's chat template (`apply_chat_template(..., add_generation_prompt=True)`)."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or "this model"
        raise UserError(
            f"the tokenizer of {name} has no chat template: choose a prompt format with "
            f"--prompt-format ({', '.join(n for n in FORMATS if n != 'chat')})"
        )
    _split(messages)
    return tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages], tokenize=False, add_generation_prompt=True
    )


def format_llama2(messages: Sequence[Message], tokenizer: Any = None) -> str:
    """Llama-2-chat's own `[INST] <<SYS>>` shape (Meta's `llama/generation.py`, `chat_completion`) with the
    request asked as `Question: ... Answer:`: this project's variant, not the paper's (see paper-llama2).

    `<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\nQuestion: {user}\\nAnswer: [/INST]` for one turn
    (without a system message the `<<SYS>>` block is left out); earlier turns are
    `<s>[INST] Question: {user}\\nAnswer: [/INST] {answer} </s>`. The prompt ends right after `[/INST]`.
    """
    system, turns = _split(messages)
    pairs = _pairs(turns)
    out = []
    for i, (user, answer) in enumerate(pairs):
        user = f"Question: {user.strip()}\nAnswer:"
        if i == 0 and system:
            user = f"<<SYS>>\n{system}\n<</SYS>>\n\n{user}"
        out.append(f"<s>[INST] {user} [/INST]")
        if answer is not None:
            out.append(f" {answer.strip()} </s>")
    return "".join(out)


def format_mistral(messages: Sequence[Message], tokenizer: Any = None) -> str:
    """Mistral-7B-Instruct (v0.1/v0.2): `<s>[INST] {user} [/INST]`, answers end with `</s>`.

    Mistral has no system role; as in its published chat template, the system text leads the first
    user turn, separated by a blank line.
    """
    system, turns = _split(messages)
    out = ["<s>"]
    for i, (user, answer) in enumerate(_pairs(turns)):
        if i == 0 and system:
            user = f"{system}\n\n{user}"
        out.append(f"[INST] {user} [/INST]")
        if answer is not None:
            out.append(f"{answer}</s>")
    return "".join(out)


def format_vicuna(messages: Sequence[Message], tokenizer: Any = None) -> str:
    """Vicuna v1.1 (FastChat `vicuna_v1.1` conversation template).

    `{system} USER: {user} ASSISTANT:` with FastChat's default system text when none is given; earlier
    answers are written ` ASSISTANT: {answer}</s>`.
    """
    system, turns = _split(messages)
    out = [system if system else VICUNA_DEFAULT_SYSTEM]
    for user, answer in _pairs(turns):
        out.append(f" USER: {user} ASSISTANT:")
        if answer is not None:
            out.append(f" {answer}</s>")
    return "".join(out)


def format_medalpaca(messages: Sequence[Message], tokenizer: Any = None) -> str:
    """medAlpaca (Han et al. 2023, `medalpaca/prompt_templates/medalpaca.json`): Context/Question/Answer.

    `Context: {system}\\n\\nQuestion: {user}\\n\\nAnswer: `; without a system message the Context
    line is left out. Single turn only: earlier turns are written as further Question/Answer pairs.
    """
    system, turns = _split(messages)
    parts = [f"Context: {system}"] if system else []
    for user, answer in _pairs(turns):
        parts.append(f"Question: {user}")
        parts.append(f"Answer: {answer}" if answer is not None else "Answer: ")
    return "\n\n".join(parts)


def format_med42(messages: Sequence[Message], tokenizer: Any = None) -> str:
    """Med42 v1 (m42-health/med42-70b model card): `<|system|>: ... <|prompter|>: ... <|assistant|>:`.

    `<|system|>: {system}\\n<|prompter|>:{user}\\n<|assistant|>:\\n`, exactly the card's spacing; the
    system line is left out without a system message; earlier answers follow their `<|assistant|>:`.
    """
    system, turns = _split(messages)
    out = [f"<|system|>: {system}\n"] if system else []
    for user, answer in _pairs(turns):
        out.append(f"<|prompter|>:{user}\n<|assistant|>:\n")
        if answer is not None:
            out.append(f"{answer}\n")
    return "".join(out)


def format_alpaca(messages: Sequence[Message], tokenizer: Any = None) -> str:
    """The Stanford Alpaca (no-input) template, used by the paper's LoRA safety fine-tuning.

    The instruction is the last user message; the template's own preamble takes the place of a system
    prompt, so system and earlier messages are not shown (prompt as the model was fine-tuned).
    """
    _, turns = _split(messages)
    return ALPACA_TEMPLATE.format(instruction=turns[-1].content)


def format_raw(messages: Sequence[Message], tokenizer: Any = None) -> str:
    """The last user message's text, unchanged (for base models and completion-style probing)."""
    _, turns = _split(messages)
    return turns[-1].content


VERBATIM = "verbatim"
"""The format whose text is tokenized with no special tokens added (`encode_prompt`)."""


FORMATS: dict[str, Formatter] = {
    "chat": format_chat,
    "llama2": format_llama2,
    "mistral": format_mistral,
    "vicuna": format_vicuna,
    "medalpaca": format_medalpaca,
    "med42": format_med42,
    "alpaca": format_alpaca,
    "raw": format_raw,
    VERBATIM: format_raw,
    **PAPER_FORMATS,
}
FORMAT_NAMES = (*FORMATS, PAPER_AUTO)  # what --prompt-format accepts


def check_format(fmt: str) -> str:
    """Return `fmt` if it names a format (or `paper`), else raise a UserError listing the names."""
    if fmt not in FORMAT_NAMES:
        raise UserError(f"unknown prompt format '{fmt}': use one of {', '.join(FORMAT_NAMES)}")
    return fmt


def resolve_format(fmt: str, name: str, local_dir: Any = None) -> str:
    """`fmt` checked, with `paper` replaced by the paper format of the model's family (from its name or
    path and its folder's config; a UserError when the family cannot be told). Backends call this once
    at load, so the model identity names the concrete format."""
    return resolve_paper_format(check_format(fmt), name, local_dir)


def resolve_spec_format(spec: Any, fmt: str) -> str:
    """The format a model spec (`models.spec.ModelSpec`) will be prompted in, without loading it: `fmt`
    checked, `paper` resolved for hf:/vllm: exactly as the backend will (same name, same folder). For
    openai: `chat` or `paper` (the paper's GPT prompting is what openai: sends), or `raw` / `verbatim`
    (a text prompt to the server's /completions endpoint); other formats are a UserError there."""
    from pathlib import Path

    check_format(fmt)
    if spec.backend == "openai":
        if fmt not in ("chat", PAPER_AUTO, "raw", VERBATIM):
            raise UserError(
                "--prompt-format applies to local models (hf:, vllm:); openai: endpoints apply their own "
                "chat template (--prompt-format paper is accepted: openai: already sends what the paper "
                "sent GPT models, the system prompt and the bare request; raw and verbatim send the "
                "request as a text prompt to /completions)"
            )
        return fmt
    path = Path(spec.name).expanduser()
    local = path.resolve() if path.is_dir() else None
    return resolve_format(fmt, str(local) if local else spec.name, local)


def render_prompt(fmt: str, messages: Sequence[Message], tokenizer: Any = None) -> str:
    """The input text for `messages` in prompt format `fmt` (the tokenizer is needed by `chat`)."""
    if check_format(fmt) == PAPER_AUTO:
        raise UserError("prompt format 'paper' must be resolved to a model family first (resolve_format)")
    return FORMATS[fmt](messages, tokenizer)


def encode_prompt(tokenizer: Any, text: str, fmt: str | None = None) -> list[int]:
    """Token ids of a rendered prompt: the tokenizer adds its special tokens (e.g. `<s>`) unless the
    text already starts with the bos token, so no prompt ever gets a doubled `<s>`. Paper formats are
    tokenised exactly as the paper did, `tokenizer(prompt)` with the tokenizer's defaults; `verbatim`
    text gets no special tokens at all."""
    if fmt is not None and is_paper_format(fmt):
        return paper_prompt_ids(tokenizer, text)
    if fmt == VERBATIM:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = getattr(tokenizer, "bos_token", None)
    add = not (bos and text.startswith(bos))
    return list(tokenizer(text, add_special_tokens=add)["input_ids"])


def decode_reply(fmt: str, tokenizer: Any, prompt_ids: Sequence[int], new_ids: Sequence[int]) -> str:
    """The generated text (special tokens skipped); for paper formats cut from the decoded whole
    sequence as the transformers text-generation pipeline does."""
    if is_paper_format(fmt):
        return paper_completion(tokenizer, prompt_ids, new_ids)
    return tokenizer.decode(list(new_ids), skip_special_tokens=True)


def finish_reply(fmt: str, prompt: str, text: str) -> str:
    """The stored response: `text` itself, or for paper formats the paper's cut (exp02: the prompt
    removed from prompt + text, then whitespace stripped)."""
    return paper_response(prompt, text) if is_paper_format(fmt) else text
