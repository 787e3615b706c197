"""Test doubles that are real parts: a stdlib-only fake OpenAI-compatible server with fault injection,
usable by the test suite, by benches and by users who want to try the toolkit offline."""

from .fake_openai import (
    FAULT_KINDS,
    Attempt,
    FakeOpenAIServer,
    FaultPlan,
    Reject,
    ServerStats,
    default_responder,
    echo_responder,
    prompt_key,
)

__all__ = ["FAULT_KINDS", "Attempt", "FakeOpenAIServer", "FaultPlan", "Reject", "ServerStats",
           "default_responder", "echo_responder", "prompt_key"]
