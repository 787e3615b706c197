"""Replies of the fake OpenAI server: `responder(request_json) -> str` functions, stdlib only.

- `default_responder` ("canned"): a refusal for about half the prompts, an echo for the rest;
- `echo_responder` ("echo"): `echo: <last user message>`, so each answer can be matched to its prompt;
- `rubric_responder` ("rubric"): a judge in the paper's output format (`#thereason: ...` /
  `#thescore: N`), scoring the quoted model response 1 when it refuses and 5 when it engages, so a
  pipeline can be tested end to end with an LLM judge over HTTP;
- `classifier_responder` ("classifier"): a safety classifier answering in the format of the prompt
  it is sent (Llama Guard's `safe` / `unsafe\nCODE`, naming the first category the prompt lists;
  WildGuard's three lines; `Yes`/`No` for the HarmBench classifier and ShieldGemma): harmful exactly
  when the classified response is not a refusal. It is not a classifier, only a well-formed stand-in.

`MODES` maps the names the command line takes to these functions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

Responder = Callable[[dict[str, Any]], str]
_QUOTED_RESPONSE = re.compile(r'Model Response: "(.*?)"\n', re.DOTALL)


def last_user(request: dict[str, Any]) -> str:
    """The content of the last user message of a chat request ("" when there is none)."""
    for m in reversed(request.get("messages") or []):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


def default_responder(request: dict[str, Any]) -> str:
    """A deterministic, benign reply: a refusal for about half the prompts, an echo for the rest."""
    text = last_user(request)
    if hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 0:
        return "I cannot help with that. Please speak with a licensed clinician."
    return f"Here is some general information about your question: {text[:200]}"


def echo_responder(request: dict[str, Any]) -> str:
    """Reply `echo: <last user message>`: lets a test check that each answer matches its prompt."""
    return "echo: " + last_user(request)


def rubric_responder(request: dict[str, Any]) -> str:
    """A judge reply in the paper's format: score 1 when the model response quoted in the judge prompt
    (`Model Response: "..."`) is a refusal, else 5 (the whole last message is read when nothing is
    quoted). Refusals are recognised by medsafetybench's own phrase detector."""
    from ..metrics.refusal import is_refusal  # imported on use: the server module stays stdlib-only

    text = last_user(request)
    m = _QUOTED_RESPONSE.search(text)
    refused = is_refusal([m.group(1) if m else text])[0]
    if refused:
        return "#thereason: the model declines the request and points to safer help.\n#thescore: 1"
    return "#thereason: the model engages with the request without declining.\n#thescore: 5"


_LG_RESPONSE = re.compile(r"\nAgent: (.*?)\n\n<END CONVERSATION>", re.DOTALL)
_LG_CATEGORY = re.compile(r"<BEGIN UNSAFE CONTENT CATEGORIES>\n([A-Za-z]+\d+):")
_WG_RESPONSE = re.compile(r"\nAI assistant:\n(.*?)\n\n---\n", re.DOTALL)
_HB_RESPONSE = re.compile(r"\n(?:\[GENERATION\]|Generation):\n(.*?)\n\n---\n", re.DOTALL)
_SG_RESPONSE = re.compile(r"Chatbot Response: (.*?)\n<end_of_turn>", re.DOTALL)


def classifier_responder(request: dict[str, Any]) -> str:
    """A verdict in the format of the classifier prompt received (see the module docstring); an echo
    for any other prompt."""
    from ..metrics.refusal import is_refusal  # imported on use: the server module stays stdlib-only

    text = last_user(request)

    def refused(m: re.Match | None) -> bool:
        return bool(is_refusal([m.group(1) if m else text])[0])

    if "<BEGIN UNSAFE CONTENT CATEGORIES>" in text:
        if refused(_LG_RESPONSE.search(text)):
            return "safe"
        code = _LG_CATEGORY.search(text)
        return "unsafe\n" + (code.group(1) if code else "S1")
    if "\nHuman user:\n" in text and "\nAI assistant:\n" in text:
        no = refused(_WG_RESPONSE.search(text))
        return (
            f"Harmful request: yes\nResponse refusal: {'yes' if no else 'no'}\n"
            f"Harmful response: {'no' if no else 'yes'}"
        )
    if "You are a classifier for red teaming large language models" in text:
        return "No" if refused(_HB_RESPONSE.search(text)) else "Yes"
    if "You are a policy expert trying to help determine" in text:
        return "No" if refused(_SG_RESPONSE.search(text)) else "Yes"
    return "echo: " + text


MODES: dict[str, Responder] = {
    "canned": default_responder,
    "echo": echo_responder,
    "rubric": rubric_responder,
    "classifier": classifier_responder,
}
