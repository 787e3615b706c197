"""Test doubles that are real parts: a stdlib-only fake OpenAI-compatible server with fault injection,
usable by the test suite, by benches and by users who want to try the toolkit offline or test their
own pipelines (`python -m medsafetybench.testing --help`).

Names are imported from their modules on first use, so `python -m medsafetybench.testing`
runs that module without a second copy already imported by this package.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FAULT_KINDS": "fake_openai",
    "Attempt": "fake_openai",
    "FakeOpenAIServer": "fake_openai",
    "FaultPlan": "fake_openai",
    "Reject": "fake_openai",
    "ServerStats": "fake_openai",
    "prompt_key": "fake_openai",
    "MODES": "responders",
    "default_responder": "responders",
    "echo_responder": "responders",
    "rubric_responder": "responders",
    "classifier_responder": "responders",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
