"""The one narrow interface every model backend implements, and the records that cross it.

A backend takes a batch of chat requests and returns one `Completion` per request, in order. It calls
`on_result(index, completion)` as each one finishes (always on the event-loop thread), so the caller
can store results the moment they exist and a killed run loses nothing that finished. Everything
above the backends (pipeline, judges, generation, fine-tuning checks) uses only this interface.

A request that fails for good (after the backend's own retries) comes back as a `Completion` with
`error` set and empty text; it is never stored as a response, so a re-run tries it again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. Greedy (temperature 0) with 512 new tokens, as in the paper.

    `stop` (strings that end a reply; the reply excludes them) and `frequency_penalty` (subtracted from
    a token's logit once per time it already occurs in the reply, as vLLM and the OpenAI API define it)
    serve the medical QA paper protocol. They are left out of `to_dict()` at their defaults, so the
    cache keys of responses stored before they existed do not change.
    """

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    frequency_penalty: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.stop, tuple):  # from JSON (a list) or a single string
            object.__setattr__(self, "stop", (self.stop,) if isinstance(self.stop, str) else tuple(self.stop))

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.stop:
            del d["stop"]
        else:
            d["stop"] = list(self.stop)
        if not self.frequency_penalty:
            del d["frequency_penalty"]
        return d


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    config: GenerationConfig = field(default_factory=GenerationConfig)

    @classmethod
    def simple(cls, user: str, system: str | None = None, config: GenerationConfig | None = None) -> ChatRequest:
        msgs = ((Message("system", system),) if system else ()) + (Message("user", user),)
        return cls(msgs, config or GenerationConfig())

    def to_dict(self) -> dict:
        return {"messages": [asdict(m) for m in self.messages], "config": self.config.to_dict()}

    def cache_key(self, model_identity: str) -> str:
        """Content key of a response: model identity + messages + generation settings."""
        payload = json.dumps({"model": model_identity, **self.to_dict()}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    error: str | None = None
    system_fingerprint: str | None = None
    """What an API server said about its backend configuration with this reply (OpenAI, vLLM), if anything."""
    batch: str | None = None
    """The provider batch that answered (None: a live call)."""

    @property
    def ok(self) -> bool:
        return self.error is None


ResultCallback = Callable[[int, Completion], None]


@runtime_checkable
class ChatModel(Protocol):
    """A chat model behind any backend.

    `identity` is a stable, secret-free string that names the model *and its weights/prompting*: it
    changes when anything that changes outputs changes (weights, adapter, prompt format), and it is
    the model half of every response's cache key.
    """

    identity: str

    async def generate(
        self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
    ) -> list[Completion]: ...

    async def aclose(self) -> None: ...
