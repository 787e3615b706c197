"""Prompt formats: exact strings for every family format, the chat template, and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsafetybench.errors import UserError
from medsafetybench.models.base import Message
from medsafetybench.models.formats import (
    FORMAT_NAMES,
    FORMATS,
    VICUNA_DEFAULT_SYSTEM,
    encode_prompt,
    render_prompt,
)

SYS, USER = Message("system", "Be safe."), Message("user", "What is asthma?")
CHAT = (SYS, USER)
MULTI = (SYS, Message("user", "Hi"), Message("assistant", "Hello."), Message("user", "What is gout?"))


def test_registry_names() -> None:
    family = {"chat", "llama2", "mistral", "vicuna", "medalpaca", "med42", "alpaca", "raw", "verbatim"}
    paper = {"paper-llama2", "paper-mistral", "paper-vicuna", "paper-medalpaca", "paper-med42", "paper-pythia"}
    assert set(FORMATS) == family | paper
    assert FORMAT_NAMES == (*FORMATS, "paper")


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("llama2", "<s>[INST] <<SYS>>\nBe safe.\n<</SYS>>\n\nQuestion: What is asthma?\nAnswer: [/INST]"),
        ("mistral", "<s>[INST] Be safe.\n\nWhat is asthma? [/INST]"),
        ("vicuna", "Be safe. USER: What is asthma? ASSISTANT:"),
        ("medalpaca", "Context: Be safe.\n\nQuestion: What is asthma?\n\nAnswer: "),
        ("med42", "<|system|>: Be safe.\n<|prompter|>:What is asthma?\n<|assistant|>:\n"),
        (
            "alpaca",
            "Below is an instruction that describes a task. Write a response that appropriately "
            "completes the request.\n\n### Instruction:\nWhat is asthma?\n\n### Response:\n",
        ),
        ("raw", "What is asthma?"),
    ],
)
def test_single_turn_with_system(fmt: str, expected: str) -> None:
    assert render_prompt(fmt, CHAT) == expected


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("llama2", "<s>[INST] Question: What is asthma?\nAnswer: [/INST]"),
        ("mistral", "<s>[INST] What is asthma? [/INST]"),
        ("vicuna", f"{VICUNA_DEFAULT_SYSTEM} USER: What is asthma? ASSISTANT:"),
        ("medalpaca", "Question: What is asthma?\n\nAnswer: "),
        ("med42", "<|prompter|>:What is asthma?\n<|assistant|>:\n"),
    ],
)
def test_single_turn_without_system(fmt: str, expected: str) -> None:
    assert render_prompt(fmt, (USER,)) == expected


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (
            "llama2",
            "<s>[INST] <<SYS>>\nBe safe.\n<</SYS>>\n\nQuestion: Hi\nAnswer: [/INST] Hello. </s><s>[INST] Question: "
            "What is gout?\nAnswer: [/INST]",
        ),
        ("mistral", "<s>[INST] Be safe.\n\nHi [/INST]Hello.</s>[INST] What is gout? [/INST]"),
        ("vicuna", "Be safe. USER: Hi ASSISTANT: Hello.</s> USER: What is gout? ASSISTANT:"),
        ("medalpaca", "Context: Be safe.\n\nQuestion: Hi\n\nAnswer: Hello.\n\nQuestion: What is gout?\n\nAnswer: "),
        (
            "med42",
            "<|system|>: Be safe.\n<|prompter|>:Hi\n<|assistant|>:\nHello.\n<|prompter|>:What is gout?\n"
            "<|assistant|>:\n",
        ),
        ("raw", "What is gout?"),
    ],
)
def test_multi_turn(fmt: str, expected: str) -> None:
    assert render_prompt(fmt, MULTI) == expected


def test_unknown_format_lists_names() -> None:
    with pytest.raises(UserError, match="unknown prompt format 'llama3'.*chat, llama2, mistral"):
        render_prompt("llama3", CHAT)


def test_chat_must_end_with_user() -> None:
    with pytest.raises(UserError, match="end with a user message"):
        render_prompt("llama2", (SYS, USER, Message("assistant", "Sure")))
    with pytest.raises(UserError, match="role 'tool'"):
        render_prompt("vicuna", (Message("tool", "x"), USER))


def test_chat_without_tokenizer_or_template_suggests_option() -> None:
    with pytest.raises(UserError, match="--prompt-format"):
        render_prompt("chat", CHAT)


def test_chat_template_of_tiny_model(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = render_prompt("chat", CHAT, tok)
    assert text == "<s><|system|>\nBe safe.\n<|user|>\nWhat is asthma?\n<|assistant|>\n"
    ids = encode_prompt(tok, text)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    raw = encode_prompt(tok, render_prompt("raw", CHAT, tok))
    assert raw[0] == tok.bos_token_id and raw.count(tok.bos_token_id) == 1


def test_verbatim_adds_no_special_tokens(tiny_model_dir: Path) -> None:
    """`raw` gets the tokenizer's <s> unless the text starts with it; `verbatim` never does."""
    from transformers import AutoTokenizer

    from medsafetybench.models.formats import encode_prompt

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    plain = tok("What is asthma?", add_special_tokens=False)["input_ids"]
    assert encode_prompt(tok, "What is asthma?", "raw") == [tok.bos_token_id, *plain]
    assert encode_prompt(tok, "What is asthma?", "verbatim") == plain
    assert encode_prompt(tok, " <s>What is asthma?", "verbatim")[1] == tok.bos_token_id  # its own <s>, kept
    assert render_prompt("verbatim", [Message("system", "x"), Message("user", "What is asthma?")]) == "What is asthma?"
