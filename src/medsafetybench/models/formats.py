"""Prompt formats: how a chat (`Sequence[Message]`) becomes the text a local model reads.

The default, `chat`, is the tokenizer's own chat template (what the model's authors ship). The others
reproduce the family formats the MedSafetyBench paper prompted its open models with, by name, so a
user can reproduce the paper faithfully or prompt a base model that has no template:

    chat       the tokenizer's chat template, with the generation prompt appended
    llama2     Llama-2-chat `<s>[INST] <<SYS>>...<</SYS>>` with the request as `Question: ... Answer:`
    mistral    Mistral-Instruct's `[INST] ... [/INST]` (no system role: it leads the first turn)
    vicuna     Vicuna v1.1 (`SYSTEM USER: ... ASSISTANT:`), also used by several medical fine-tunes
    medalpaca  medAlpaca's Context/Question/Answer template
    med42      Med42's `<|system|>: / <|prompter|>: / <|assistant|>:` template
    alpaca     the Stanford Alpaca template, the one the paper's LoRA safety fine-tuning used
    raw        the user text alone

`render_prompt(fmt, messages, tokenizer)` returns text; `encode_prompt(tokenizer, text)` turns it into
token ids without adding a second `<s>` when the text already starts with one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import UserError
from .base import Message

VICUNA_DEFAULT_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The "
                         "assistant gives helpful, detailed, and polite answers to the user's questions.")
ALPACA_TEMPLATE = ("Below is an instruction that describes a task. Write a response that appropriately "
                   "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")

Formatter = Callable[[Sequence[Message], Any], str]


def _split(messages: Sequence[Message]) -> tuple[str | None, list[Message]]:
    """(system text or None, remaining turns); checks the chat ends with a user turn."""
    msgs = list(messages)
    system = None
    if msgs and msgs[0].role == "system":
        system, msgs = msgs[0].content, msgs[1:]
    if not msgs or msgs[-1].role != "user":
        raise UserError("a prompt must end with a user message (got roles: "
                        + ", ".join(m.role for m in messages) + ")")
    for m in msgs:
        if m.role not in ("user", "assistant"):
            raise UserError(f"message role '{m.role}' is not allowed here: use system (first), user or "
                            "assistant")
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
        raise UserError(f"the tokenizer of {name} has no chat template: choose a prompt format with "
                        f"--prompt-format ({', '.join(n for n in FORMATS if n != 'chat')})")
    _split(messages)
    return tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in messages],
                                         tokenize=False, add_generation_prompt=True)


def format_llama2(messages: Sequence[Message], tokenizer: Any = None) -> str:
    """Llama-2-chat as the MedSafetyBench paper prompted it: Meta's `[INST] <<SYS>>` shape (reference
    code `llama/generation.py`, `chat_completion`) with the request asked as `Question: ... Answer:`.

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


FORMATS: dict[str, Formatter] = {
    "chat": format_chat,
    "llama2": format_llama2,
    "mistral": format_mistral,
    "vicuna": format_vicuna,
    "medalpaca": format_medalpaca,
    "med42": format_med42,
    "alpaca": format_alpaca,
    "raw": format_raw,
}


def check_format(fmt: str) -> str:
    """Return `fmt` if it names a format, else raise a UserError listing the names."""
    if fmt not in FORMATS:
        raise UserError(f"unknown prompt format '{fmt}': use one of {', '.join(FORMATS)}")
    return fmt


def render_prompt(fmt: str, messages: Sequence[Message], tokenizer: Any = None) -> str:
    """The input text for `messages` in prompt format `fmt` (the tokenizer is needed by `chat`)."""
    return FORMATS[check_format(fmt)](messages, tokenizer)


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a rendered prompt: the tokenizer adds its special tokens (e.g. `<s>`) unless the
    text already starts with the bos token, so no prompt ever gets a doubled `<s>`."""
    bos = getattr(tokenizer, "bos_token", None)
    add = not (bos and text.startswith(bos))
    return list(tokenizer(text, add_special_tokens=add)["input_ids"])
