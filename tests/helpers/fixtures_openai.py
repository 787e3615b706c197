"""Pytest fixtures around the fake OpenAI-compatible server (registered in conftest.py).

`fake_openai` is a running server that echoes the last user message; `fake_openai_factory(...)`
starts servers with any responder, latency or fault plan and stops them after the test;
`openai_env_clean` removes OPENAI_API_KEY / OPENAI_BASE_URL so a developer's shell cannot leak in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from medsafetybench.testing import FakeOpenAIServer, echo_responder


@pytest.fixture
def openai_env_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def fake_openai_factory(openai_env_clean: None) -> Iterator[Callable[..., FakeOpenAIServer]]:
    servers: list[FakeOpenAIServer] = []

    def make(responder: Any = echo_responder, **kwargs: Any) -> FakeOpenAIServer:
        srv = FakeOpenAIServer(responder, **kwargs).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def fake_openai(fake_openai_factory: Callable[..., FakeOpenAIServer]) -> FakeOpenAIServer:
    return fake_openai_factory()
