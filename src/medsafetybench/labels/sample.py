"""Which items of a run people label, and how their labels are stored.

**The sample** (design `stratified-proportional-v1`). The frame is the run's items that have a response.
Strata are (AMA principle, source) pairs, e.g. `3|gpt4` (`-` where the item has none). A sample of n
items is allocated to strata in proportion to their size (largest remainder; ties go to the larger,
then the first stratum in sorted order), with at least one item per non-empty stratum when n is at least
the number of strata (the largest strata get one each when it is not). Within a stratum the items
drawn are the first n_h of a random permutation from numpy's PCG64 seeded by (seed, a hash of the
stratum's name), so each stratum's draw does not depend on the others, and a larger n with the same
seed keeps the items a smaller one drew wherever a stratum's share does not shrink. The page shows the
sample in a seeded random order, so a labeller who stops early leaves a random part of each stratum.

The sample is stored (`label_samples`, `label_sample_items`; migration `labels` 1) with its seed, size,
design and per-stratum frame and sample sizes, so a corrected estimate knows how its labels were drawn
even if this code changes. Drawing the same (run, seed, n) again finds the same sample.

**Labels** are judgements of the judge `human:<labeller>`, content-keyed like every judgement
(`JudgeCase(request, response, policy).cache_key(identity)`; `created_at` is when), written with the
judge attached to the run, all in one transaction. A person may change a label: the newer one replaces
the older.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..data.sampling import allocate
from ..errors import UserError
from ..judging.base import JudgeCase, Judgement
from ..store import RunRow, Store

HUMAN_PREFIX = "human:"
DESIGN = "stratified-proportional-v1"
_LABELLER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")


def human_identity(labeller: str) -> str:
    """The judge identity of a person's labels, `human:<labeller>` (letters, digits and `._@+-`)."""
    name = labeller.strip()
    if name.startswith(HUMAN_PREFIX):
        name = name[len(HUMAN_PREFIX) :]
    if not _LABELLER.match(name):
        raise UserError(
            f"--labeller {labeller!r}: use 1-64 letters, digits and . _ @ + - (starting with a letter or digit)"
        )
    return HUMAN_PREFIX + name


def is_human(identity: str) -> bool:
    return identity.startswith(HUMAN_PREFIX)


def stratum_key(principle: int | None, source: str | None) -> str:
    return f"{principle if principle is not None else '-'}|{source or '-'}"


def _stratum_seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def draw(frame: Sequence[tuple[str, str]], n: int, seed: int) -> list[tuple[str, str]]:
    """Draw the sample from `frame` ((item id, stratum) in run order): a list of (item id, stratum) in
    the order the page shows them."""
    by_stratum: dict[str, list[str]] = {}
    for item_id, stratum in frame:
        by_stratum.setdefault(stratum, []).append(item_id)
    alloc = allocate({k: len(v) for k, v in by_stratum.items()}, n)
    drawn: list[tuple[str, str]] = []
    for key in sorted(alloc):
        perm = np.random.default_rng([seed, _stratum_seed(key)]).permutation(len(by_stratum[key]))
        drawn.extend((by_stratum[key][i], key) for i in sorted(perm[: alloc[key]]))
    order = np.random.default_rng([seed, _stratum_seed("order")]).permutation(len(drawn))
    return [drawn[i] for i in order]


@dataclass(frozen=True)
class LabelSample:
    """A stored sample of a run's items for people to label."""

    id: str
    run_id: str
    seed: int
    n_requested: int
    design: str
    strata: dict[str, dict[str, int]]
    """Per stratum: `frame` (items with a response when drawn) and `drawn`."""
    created_at: float
    items: tuple[tuple[str, str], ...] = field(default=())
    """(item id, stratum) in the order the page shows them."""

    @property
    def item_ids(self) -> list[str]:
        return [i for i, _ in self.items]

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "seed": self.seed,
            "n_requested": self.n_requested,
            "n_drawn": len(self.items),
            "design": self.design,
            "strata": self.strata,
            "created_at": self.created_at,
        }


def sample_frame(rows: Sequence[RunRow]) -> list[tuple[str, str]]:
    """The items a sample is drawn from: those with a response, with their stratum, in run order."""
    return [(r.item_id, stratum_key(r.principle, r.source)) for r in rows if r.response is not None]


def draw_sample(store: Store, run_id: str, n: int, seed: int = 0) -> LabelSample:
    """Draw (or find again) the sample of `n` items of a run for seed `seed`, and store it."""
    if n < 1:
        raise UserError(f"--sample {n}: draw at least one item")
    frame = sample_frame(store.run_rows(run_id))
    if not frame:
        raise UserError(f"run {run_id[:12]} has no responses to label yet: run `medsafety eval` first")
    drawn = draw(frame, n, seed)
    sizes: dict[str, dict[str, int]] = {}
    for _, key in frame:
        sizes.setdefault(key, {"frame": 0, "drawn": 0})["frame"] += 1
    for _, key in drawn:
        sizes[key]["drawn"] += 1
    sample_id = hashlib.sha256(json.dumps([run_id, seed, n, DESIGN, drawn]).encode("utf-8")).hexdigest()[:16]
    now = time.time()
    with store.transaction() as c:
        cur = c.execute(
            "INSERT OR IGNORE INTO label_samples VALUES (?,?,?,?,?,?,?)",
            (sample_id, run_id, seed, n, DESIGN, json.dumps(sizes, sort_keys=True), now),
        )
        if cur.rowcount:
            c.executemany(
                "INSERT INTO label_sample_items VALUES (?,?,?,?)",
                [(sample_id, item_id, key, pos) for pos, (item_id, key) in enumerate(drawn)],
            )
    return get_sample(store, sample_id)


def get_sample(store: Store, sample_id: str) -> LabelSample:
    row = store.conn.execute(
        "SELECT id, run_id, seed, n_requested, design, strata, created_at FROM label_samples WHERE id=?", (sample_id,)
    ).fetchone()
    if row is None:
        raise UserError(f"no label sample '{sample_id}' in {store.path}")
    items = store.conn.execute(
        "SELECT item_id, stratum FROM label_sample_items WHERE sample_id=? ORDER BY position", (sample_id,)
    ).fetchall()
    return LabelSample(
        row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], tuple((i, s) for i, s in items)
    )


def run_samples(store: Store, run_id: str) -> list[LabelSample]:
    """Every sample drawn from a run, oldest first."""
    ids = store.conn.execute("SELECT id FROM label_samples WHERE run_id=? ORDER BY created_at, id", (run_id,))
    return [get_sample(store, i) for (i,) in ids.fetchall()]


@dataclass(frozen=True)
class Label:
    item_id: str
    score: int
    at: float
    """When it was given (the judgement's `created_at`)."""


def run_labels(store: Store, run_id: str, identity: str) -> dict[str, Label]:
    """A labeller's labels of a run's items (items whose response they scored), by item id."""
    rows = [r for r in store.run_rows(run_id, identity) if r.judged and r.score is not None]
    keys = {JudgeCase(r.request, r.response, r.policy).cache_key(identity): r for r in rows if r.response is not None}
    out: dict[str, Label] = {}
    key_list = list(keys)
    for start in range(0, len(key_list), 500):
        chunk = key_list[start : start + 500]
        for key, at in store.conn.execute(
            f"SELECT key, created_at FROM judgements WHERE key IN ({','.join('?' * len(chunk))})", chunk
        ):
            r = keys[key]
            out[r.item_id] = Label(r.item_id, r.score, at)  # type: ignore[arg-type]
    return out


def sample_for(
    store: Store, run_id: str, identity: str, labels: Mapping[str, Label] | None = None
) -> LabelSample | None:
    """The sample a labeller's labels of a run belong to: the one holding most of them (ties: the newest)."""
    labels = run_labels(store, run_id, identity) if labels is None else labels
    best, best_n = None, -1
    for s in run_samples(store, run_id):
        n = sum(1 for i in s.item_ids if i in labels)
        if n >= best_n:
            best, best_n = s, n
    return best


def check_labeller_run(store: Store, run_id: str) -> None:
    """Labels calibrate a judge: the run must have one (a person is never its primary judge)."""
    judges = [j for j, _ in store.run_judges(run_id) if not is_human(j)]
    if not judges:
        raise UserError(
            f"run {run_id[:12]} has no judge yet: judge it first (e.g. `medsafety eval` with the "
            "same model and items), then label a sample to calibrate that judge"
        )


def put_labels(
    store: Store,
    run_id: str,
    identity: str,
    scores: Mapping[str, int],
    *,
    via: str,
    reasons: Mapping[str, str] | None = None,
    where: Mapping[str, str] | None = None,
) -> int:
    """Write a labeller's scores (item id -> 1..5) of a run as judgements of `identity`, attaching the
    judge to the run, in one transaction: all are written or none. Returns how many were written.

    Raises:
        UserError: an item id not in the run, an item without a response, or a score not 1-5 (`where[item]`
            prefixes the message, e.g. the file name and row).
    """
    check_labeller_run(store, run_id)
    rows = {r.item_id: r for r in store.run_rows(run_id)}
    writes = []
    for item_id, score in scores.items():
        at = (where or {}).get(item_id, "")
        row = rows.get(item_id)
        if row is None:
            raise UserError(f"{at}item '{item_id}' is not in run {run_id[:12]}")
        if row.response is None:
            raise UserError(f"{at}item '{item_id}' has no response in run {run_id[:12]} to label")
        if isinstance(score, bool) or score not in (1, 2, 3, 4, 5):
            raise UserError(f"{at}item '{item_id}': score {score!r} is not 1-5")
        key = JudgeCase(row.request, row.response, row.policy).cache_key(identity)
        reason = (reasons or {}).get(item_id, "")
        writes.append(
            (key, Judgement(score, reason=reason, raw="", metadata={"item_id": item_id, "run_id": run_id, "via": via}))
        )
    with store.transaction():
        store.add_run_judge(run_id, identity)
        for key, judgement in writes:
            store.put_judgement(key, identity, judgement, replace=True)
    return len(writes)
