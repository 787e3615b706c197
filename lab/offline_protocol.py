"""The protocol that chooses the offline default (docs/judges.md, "Choosing the offline default"): every
offline judge on the same held-out rows, a stacked candidate, the judge x set table and the rule.

    nice python -m lab.offline_protocol [--data ../shared/data] [--rows 500] [--json out.json]

The rows: at most `--rows` evenly spaced rows of each judge-train set (of `offline_train.select_rows`)
and all of HarmBench val; the same rows `lab/offline_judge_agreement.py --baseline-rows 500` compares
v1 on. Splits are v3's (`offline_train.protocol_splits` over these rows): leave-one-source-out (LOSO)
over the five judge-train sets and 5-fold CV on HarmBench val grouped by behaviour.

- v1: never saw the judge-train sets, so the shipped judge is held out there (cached); on HarmBench
  val it is refitted per fold on v3's folds with its trainer's settings.
- v2: its fits take ~40 min each here, so only the figures its trainer measured are quoted.
- v3: its full protocol (training on every row of the other sources) is quoted from the previous
  round on these same rows (`V3_FULL_PROTOCOL`); `v3 recipe` is v3's trainer refitted per split on
  these rows only (cached features), the like-for-like base for the stacked candidates.
- stacked candidates: a logistic regression over logit(p_v3 recipe), [logit(p_v1),] the refusal
  detector's score (`metrics.refusal.evidence`), each source weighted equally, fitted per split on
  that split's training rows (all of them, or only the harm-labelled ones: `, harm rows`) and tested
  on its held-out rows. A training row's inputs are its own
  held-out probabilities (from the split that left that row's source or fold out), so the v3 fit
  behind them saw the current split's held-out rows: a second-order leak that favours the stack,
  never a fit on the held-out labels.

Then the rule (macro-average over the harm-labelled sets, no loss > 0.03 on any) picks the default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from lab import offline_train as OT
from lab import offline_v3_train as V3
from lab import trainsets
from medsafetybench.judging.offline.fingerprints import pair_fingerprint

ROOT = Path(__file__).resolve().parents[1]
HARM_SETS = ("gptfuzz", "openai-rbr-gold", "harmbench-val", "A", "B", "C")
"""The sets whose labels mean harm (docs/judges.md: decided from each source's label definition)."""
OTHER_SETS = ("dices", "medicheck", "diasafety")
OUTSIDE = {
    "v1": {"A": 0.680, "B": 0.916, "C": 0.484},
    "v2": {"A": 0.757, "B": 0.954, "C": 0.791},
    "v3": {"A": 0.767, "B": 0.956, "C": 0.816},
}
"""Accuracy on the outside check's three sets, as reported in issue 21 (we do not have the sets)."""
V2_QUOTED = {"gptfuzz": 0.742, "harmbench-val": None}
"""v2's only protocol figures (previous round): LOSO GPTFuzz on all rows; HarmBench CV ran fold 0 only."""
V3_FULL_PROTOCOL = {
    "gptfuzz": 0.770,
    "openai-rbr-gold": 0.876,
    "harmbench-val": 0.809,
    "dices": 0.818,
    "medicheck": 0.792,
    "diasafety": 0.534,
}
"""v3's full protocol (every row of every other source in training) on these same rows (the 500 evenly
spaced rows of each left-out set; all of HarmBench val): `lab/offline_judge_agreement.py --judges v3
--baseline-rows 500`, previous round (the trainer is deterministic). Too slow to re-run on the loaded
machine this round (the feature pass over all 20,978 rows: ~90 min at load 10)."""
INTERNAL_HARM = ("gptfuzz", "openai-rbr-gold", "harmbench-val")
MARGIN = 0.03


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def subsample(test: np.ndarray, cap: int) -> np.ndarray:
    """At most `cap` evenly spaced positions of `test` (the same rows the agreement bench uses)."""
    return test[np.unique(np.linspace(0, len(test) - 1, min(cap, len(test))).astype(int))]


def v1_held_out(rows: list, idx: np.ndarray) -> np.ndarray:
    """The shipped v1's p(harmful) on rows `idx` (cached under $MEDSAFETYBENCH_CACHE/judge-protocol/)."""
    from medsafetybench.judging.base import JudgeCase
    from medsafetybench.judging.offline.v1 import OfflineJudgeV1
    from medsafetybench.minilm import runtime

    judge = OfflineJudgeV1()
    h = hashlib.sha256(judge.identity.encode())
    for i in idx:
        h.update(pair_fingerprint(rows[i].request, rows[i].response).to_bytes(8, "little"))
    path = runtime.cache_dir().parent / "judge-protocol" / f"v1-{h.hexdigest()[:20]}.npy"
    if path.is_file():
        return np.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for start in range(0, len(idx), 256):
        chunk = idx[start : start + 256]
        out.append(judge.probabilities([JudgeCase(rows[i].request, rows[i].response) for i in chunk]))
        log(f"v1: {start + len(chunk)}/{len(idx)} rows")
    p = np.concatenate(out)
    np.save(path, p)
    return p


def v1_cv(data: Path, rows: list) -> dict[int, float]:
    """v1 refitted per fold on HarmBench val (v3's folds, its trainer's settings): row position -> p."""
    from medsafetybench.judging.offline.v1 import cross_val_proba, featurize, penalties
    from medsafetybench.judging.offline.v1 import harmbench_val as v1_rows
    from medsafetybench.judging.offline.v1 import msb_safe_responses as v1_safe
    from medsafetybench.minilm import runtime

    hb, extra = v1_rows(data), v1_safe(data, "train")
    h = hashlib.sha256(b"v1-cv-features-1")
    for r in (*hb, *extra):
        h.update(pair_fingerprint(r.request, r.response).to_bytes(8, "little"))
    path = runtime.cache_dir().parent / "judge-protocol" / f"v1cv-{h.hexdigest()[:20]}.npz"
    if path.is_file():
        fx, ex = np.load(path)["fx"], np.load(path)["ex"]
    else:
        fx = featurize([r.request for r in hb], [r.response for r in hb])
        ex = featurize([r.request for r in extra], [r.response for r in extra])
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, fx=fx, ex=ex)
    p = cross_val_proba(
        fx,
        np.array([r.label for r in hb], float),
        [f"hb:{r.group}" for r in hb],
        k=5,
        l2=penalties(fx.shape[1], 300.0, 10.0),
        extra_x=ex,
        extra_y=np.zeros(len(ex)),
        extra_weight=0.3,
    )
    # v1's reader composes the request its own way: match rows by position, checked by response and label
    mine = [i for i, r in enumerate(rows) if r.source == trainsets.DEV_SOURCE]
    if len(mine) != len(hb) or any(
        rows[i].response != r.response or rows[i].label != r.label for i, r in zip(mine, hb, strict=True)
    ):
        raise SystemExit("v1's HarmBench val rows do not line up with lab.trainsets' rows")
    return {i: float(v) for i, v in zip(mine, p, strict=True)}


def refusal_scores(rows: list, idx: np.ndarray) -> np.ndarray:
    from medsafetybench.metrics.refusal import evidence

    return np.array([evidence(rows[i].response).score for i in idx])


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(q / (1 - q))


def fit_stack(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Weighted logistic regression by Newton steps (small, deterministic): (coefficients, intercept)."""
    xa = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(xa.shape[1])
    reg = np.full(xa.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-xa @ beta))
        g = xa.T @ (w * (p - y)) + reg * beta
        hess = (xa * (w * p * (1 - p))[:, None]).T @ xa + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, g)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--rows", type=int, default=500, help="at most this many rows of each judge-train set")
    ap.add_argument("--v1-only", action="store_true", help="only compute (and cache) v1's figures")
    ap.add_argument("--features-only", action="store_true", help="only compute (and cache) v3's features")
    ap.add_argument("--json", type=Path, default=None, help="write the table here")
    args = ap.parse_args(argv)

    every = OT.select_rows(args.data)
    src_all = np.array([r.source for r in every])
    # the rows every judge is scored on: at most --rows evenly spaced rows of each judge-train set, all of
    # HarmBench val (v1 held out there only when refitted per fold)
    keep = np.concatenate(
        [subsample(np.flatnonzero(src_all == s), args.rows) for s in trainsets.TRAIN_SOURCES]
        + [np.flatnonzero(src_all == trainsets.DEV_SOURCE)]
    )
    rows = [every[i] for i in keep]
    y = np.array([r.label for r in rows], dtype=np.float64)
    src = np.array([r.source for r in rows])
    jt = np.flatnonzero(src != trainsets.DEV_SOURCE)
    log(f"{len(rows)} rows: " + ", ".join(f"{s} {int((src == s).sum())}" for s in trainsets.ALL_SOURCES))
    if args.features_only:
        V3.row_features(rows, log=log)
        return 0
    p1 = np.full(len(rows), np.nan)
    for s in trainsets.TRAIN_SOURCES:
        idx = np.flatnonzero(src == s)
        p1[idx] = v1_held_out(rows, idx)
    for i, v in v1_cv(args.data, rows).items():
        p1[i] = v
    if args.v1_only:
        return 0
    x = V3.row_features(rows, log=log)
    config = V3.TrainConfig()
    res = V3.run_protocol(rows, x, config, log=log)
    p3 = np.full(len(rows), np.nan)
    for name, test in res.test.items():
        p3[test] = res.p[name]
    assert not np.isnan(p3).any() and not np.isnan(p1).any()

    # stacked candidates: fitted per split on its training rows, tested on its held-out rows
    ref = refusal_scores(rows, np.arange(len(rows)))
    inputs = {
        "stack v3+v1+refusal": np.column_stack([logit(p3), logit(p1), ref]),
        "stack v3+refusal": np.column_stack([logit(p3), ref]),
    }
    stack_p = {k: np.full(len(rows), np.nan) for k in inputs}
    coefs: dict[str, dict[str, list[float]]] = {k: {} for k in inputs}
    splits = [s for s in OT.protocol_splits(rows, np.ones(len(rows), dtype=bool)) if len(s.test)]
    # the same stacks fitted on the harm-labelled training rows only (GPTFuzz, RBR gold, HarmBench val)
    for k in list(inputs):
        inputs[f"{k}, harm rows"] = inputs[k]
        stack_p[f"{k}, harm rows"] = np.full(len(rows), np.nan)
        coefs[f"{k}, harm rows"] = {}
    harm_rows = np.isin(src, INTERNAL_HARM)
    for s in splits:
        for k, f in inputs.items():
            train = s.train[harm_rows[s.train]] if k.endswith("harm rows") else s.train
            w = V3.source_weights(src[train].tolist(), config)
            beta, b0 = fit_stack(f[train], y[train], w)
            coefs[k][s.name] = [round(float(v), 3) for v in (*beta, b0)]
            stack_p[k][s.test] = 1 / (1 + np.exp(-(f[s.test] @ beta + b0)))

    probs = {"v1": p1, "v3 recipe": p3, **stack_p}
    table: dict[str, dict[str, dict]] = {j: {} for j in probs}
    for j, p in probs.items():
        for s in trainsets.ALL_SOURCES:
            idx = np.flatnonzero(src == s)
            table[j][s] = OT.metrics(y[idx], p[idx])
    log(f"judge-train rows scored: {len(jt)}")
    print_table(table)
    for k, c in coefs.items():
        print(f"{k}: coefficients per split (inputs..., intercept): {c}")
    print()
    choose(table)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": {s: int((src == s).sum()) for s in trainsets.ALL_SOURCES},
                    "table": table,
                    "stack_coefficients": coefs,
                },
                indent=1,
            )
            + "\n"
        )
    return 0


def figures(table: dict, judge: str) -> dict[str, float]:
    """Accuracy per set for `judge`: measured (or quoted) internal sets plus the outside figures."""
    if judge == "v3":
        out = dict(V3_FULL_PROTOCOL)
    elif judge == "v2":
        out = {k: v for k, v in V2_QUOTED.items() if v is not None}
    else:
        out = {k: m["accuracy"] for k, m in table.get(judge, {}).items()}
    out.update(OUTSIDE.get(judge, {}))
    return out


COLS = ("gptfuzz", "openai-rbr-gold", "harmbench-val", "A", "B", "C", "dices", "medicheck", "diasafety")


def print_table(table: dict) -> None:
    print(
        "== accuracy (harmful = p >= 0.5), held out, on the same rows; harm macro = mean over " + ", ".join(HARM_SETS)
    )
    print(f"{'judge':32s}" + "".join(f"{c[:11]:>12s}" for c in COLS) + f"{'harm macro':>12s}" + f"{'internal':>10s}")
    for judge in ("v1", "v2", "v3", *[k for k in table if k != "v1"]):  # v2 and v3 (full) are quoted
        f = figures(table, judge)
        harm = [f.get(c) for c in HARM_SETS]
        inner = [f.get(c) for c in INTERNAL_HARM]
        macro = f"{np.mean(harm):12.3f}" if all(v is not None for v in harm) else f"{'-':>12s}"
        imacro = f"{np.mean(inner):10.3f}" if all(v is not None for v in inner) else f"{'-':>10s}"
        name = {"v3": "v3 (full protocol)", "v2": "v2 (quoted)", "v3 recipe": "v3 refit on these rows"}.get(
            judge, judge
        )
        print(
            f"{name[:32]:32s}"
            + "".join(f"{f[c]:12.3f}" if f.get(c) is not None else f"{'-':>12s}" for c in COLS)
            + macro
            + imacro
        )
    print()


def worst_loss(j: str, pool: dict[str, dict[str, float]], sets: tuple[str, ...]) -> float:
    """The most `j` trails any other judge of `pool` on a set of `sets` where both have a figure."""
    return max(
        [
            pool[o][s] - pool[j][s]
            for o in pool
            if o != j
            for s in sets
            if pool[o].get(s) is not None and pool[j].get(s) is not None
        ]
        or [0.0]
    )


def choose(table: dict) -> str:
    """Apply the rule (docs/judges.md) to v1, v2, v3 (outside figures included), then to the stacked
    candidates against the v3 recipe refitted on the same rows (internal harm-labelled sets only)."""
    judges = {j: figures(table, j) for j in ("v1", "v2", "v3")}
    eligible = {j: f for j, f in judges.items() if all(f.get(s) is not None for s in HARM_SETS)}
    macro = {j: float(np.mean([f[s] for s in HARM_SETS])) for j, f in eligible.items()}
    passing = [j for j in eligible if worst_loss(j, eligible, HARM_SETS) <= MARGIN]
    for j in eligible:
        print(f"{j}: harm macro {macro[j]:.3f}, worst loss to another judge {worst_loss(j, eligible, HARM_SETS):+.3f}")
    print(f"not eligible (no figure on some harm-labelled set): {sorted(set(judges) - set(eligible))}")
    best = max(passing or eligible, key=macro.get)
    print(f"default by the rule: {best}" + ("" if passing else " (no judge passed the 0.03 test)"))
    for s in INTERNAL_HARM + HARM_SETS[3:]:
        top = max((f[s], j) for j, f in judges.items() if f.get(s) is not None)
        print(f"  best on {s}: {top[1]} ({top[0]:.3f})")
    winner = best
    base = figures(table, "v3 recipe")
    for cand in [k for k in table if k.startswith("stack")]:
        new = figures(table, cand)
        gain = float(np.mean([new[s] for s in INTERNAL_HARM]) - np.mean([base[s] for s in INTERNAL_HARM]))
        loss = max(base[s] - new[s] for s in INTERNAL_HARM)
        wins = gain >= 0.01 and loss <= MARGIN
        print(
            f"{cand} vs the v3 recipe on the same rows and splits ({', '.join(INTERNAL_HARM)}): "
            f"macro {gain:+.3f}, worst loss {loss:+.3f} -> {'beats it' if wins else 'does not beat it'}"
        )
        if wins:
            winner = cand
    return winner


if __name__ == "__main__":
    raise SystemExit(main())
