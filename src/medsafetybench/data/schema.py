"""The benchmark item: the typed record every later stage keys on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Split = Literal["eval", "improve", "extra", "user", "sample"]
Source = Literal["gpt4", "llama2", "llama3", "user", "sample", "general"]

SPLITS: tuple[str, ...] = ("eval", "improve", "extra", "user", "sample")
SOURCES: tuple[str, ...] = ("gpt4", "llama2", "llama3", "user", "sample", "general")


@dataclass(frozen=True)
class Item:
    """One harmful request with its metadata.

    `id` is stable across releases and machines, e.g. `eval/gpt4/p3/017` (split/source/principle/row).
    `principle` is the AMA principle (1-9) the request violates, or None when unknown (user files).
    `policy` is the usage policy the judge reads: "medical" (AMA principles) or "general" (Meta's).
    `safe_response` is the benchmark's reference safe response, None where the release has none.
    """

    id: str
    split: str
    source: str
    principle: int | None
    request: str
    safe_response: str | None = None
    policy: str = "medical"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Item:
        return cls(
            **{k: d.get(k) for k in ("id", "split", "source", "principle", "request", "safe_response")},
            policy=d.get("policy") or "medical",
        )
