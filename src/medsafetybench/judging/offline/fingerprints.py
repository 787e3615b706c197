"""Fingerprints of the rows a judge was trained on, so that agreement on a labelled set can tell the
rows the judge has seen (in-sample) from the ones it has not (held-out).

A fingerprint is the first 8 bytes (a uint64) of the SHA-256 of normalised text (NFKC, case-folded,
whitespace collapsed):

- the *pair*: request and response joined by U+001F;
- the *response* alone, for responses of at least `MIN_RESPONSE_WORDS` words: such a response
  identifies its row even when the request was composed another way (a multi-turn prompt flattened
  differently, a HarmBench context put before or after the behaviour). Short responses ("I'm sorry, I
  can't help with that.") recur across unrelated rows and are matched only as pairs.

A labelled row is in-sample when either fingerprint matches. Judges that know what they were trained
on expose it as `trained_on` (`TrainedJudge`); LLM judges do not, and their rows all count as held-out
(unknown). With 64-bit fingerprints and ~20,000 training rows, a false match has a chance of about
1e-15 per row.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ...errors import UserError

MIN_RESPONSE_WORDS = 25
FORMAT = "medsafetybench-training-fingerprints-v1"


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text or "").casefold().split())


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def pair_fingerprint(request: str, response: str) -> int:
    return _h(normalise(request) + "\x1f" + normalise(response))


def response_fingerprint(response: str) -> int | None:
    """None for responses too short to identify a row on their own."""
    norm = normalise(response)
    return _h("response\x1f" + norm) if len(norm.split()) >= MIN_RESPONSE_WORDS else None


@dataclass(frozen=True)
class TrainingFingerprints:
    """Sorted, unique uint64 fingerprints of a judge's training rows."""

    pairs: np.ndarray
    responses: np.ndarray

    @classmethod
    def from_pairs(cls, rows: Iterable[tuple[str, str]]) -> TrainingFingerprints:
        pairs, responses = set(), set()
        for request, response in rows:
            pairs.add(pair_fingerprint(request, response))
            r = response_fingerprint(response)
            if r is not None:
                responses.add(r)
        return cls(np.array(sorted(pairs), dtype=np.uint64), np.array(sorted(responses), dtype=np.uint64))

    def __len__(self) -> int:
        return len(self.pairs)

    @staticmethod
    def _has(arr: np.ndarray, value: int) -> bool:
        i = int(np.searchsorted(arr, np.uint64(value)))
        return i < len(arr) and int(arr[i]) == value

    def contains(self, request: str, response: str) -> bool:
        """True when the judge was trained on this row (pair match, or a long response match)."""
        if self._has(self.pairs, pair_fingerprint(request, response)):
            return True
        r = response_fingerprint(response)
        return r is not None and self._has(self.responses, r)

    def mask(self, rows: Sequence[tuple[str, str]]) -> list[bool]:
        return [self.contains(q, r) for q, r in rows]

    def tensors(self, prefix: str = "fingerprints.") -> dict[str, np.ndarray]:
        return {f"{prefix}pairs": self.pairs, f"{prefix}responses": self.responses}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], prefix: str = "fingerprints.") -> TrainingFingerprints:
        return cls(
            np.asarray(tensors[f"{prefix}pairs"], dtype=np.uint64),
            np.asarray(tensors[f"{prefix}responses"], dtype=np.uint64),
        )

    def save(self, path: str | Path) -> None:
        """Write a standalone fingerprint file (safetensors; deterministic bytes)."""
        from safetensors.numpy import save_file

        save_file(self.tensors(), str(path), metadata={"format": FORMAT})

    @classmethod
    def load(cls, path: str | Path) -> TrainingFingerprints:
        from safetensors.numpy import load_file

        try:
            return cls.from_tensors(load_file(str(path)))
        except FileNotFoundError:
            raise UserError(f"training fingerprints not found at {path}: reinstall the package") from None
        except Exception as exc:  # safetensors raises its own error types for a damaged file
            raise UserError(f"training fingerprints {path} cannot be read ({exc}): reinstall the package") from None


@runtime_checkable
class TrainedJudge(Protocol):
    """A judge that knows the rows it was trained on."""

    identity: str
    trained_on: TrainingFingerprints
