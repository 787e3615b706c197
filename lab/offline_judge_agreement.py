"""The offline judges v2 and v3: held-out agreement with human labels, baselines on the same rows, checks
of the shipped weights, and speed.

    nice python -m lab.offline_judge_agreement [--data ../shared/data] [--protocol]
                                                           [--baseline-rows 1000] [--judges v2,v3] [--v1-cv]

v3 (`--judges v3`; seconds per fit, so its whole protocol always runs): its held-out protocol
(`lab/train_offline_judge_v3.py --protocol`), then v1 (and v2, where its trainer's split results are
cached) on the same held-out rows: each left-out source (at most --baseline-rows evenly spaced rows;
v1 never saw these sets) with its benign-compliance rows (OpenAI RBR gold `Comply` prompts,
MediCheck), HarmBench CV fold 0 for v2, and with --v1-cv v1's grouped CV on v3's folds; then the
shipped v3 weights on the 200 MedSafety-Eval safe responses, in-sample HarmBench, and speed (ONNX
Runtime vs torch, pairs/s, max |Δp|).

v2 sections:

1. With --protocol, the held-out protocol (`lab/train_offline_judge_v2.py --protocol`, one fit per
   split; each split's result is cached, so after the trainer has run it this reads them back; from
   scratch it is hours on 2 CPU cores): leave-one-source-out over the five judge-train sets (train on all other sources,
   test on every row of the left-out one) and 5-fold CV on HarmBench val grouped by behaviour.
2. Baselines on each source (at most --baseline-rows evenly spaced rows): the v1 offline judge (held
   out on the judge-train sets, IN-SAMPLE on HarmBench val), the refusal-string baseline and "not a
   refusal" by `judging.refusal`, all as "harmful" calls.
3. The shipped v2 weights: the 200 MedSafety-Eval reference safe responses the project checks (never
   trained on; target: all scored 1-2), and HarmBench val (IN-SAMPLE: an upper bound).
4. Speed on the 602 HarmBench rows, in this process: the ONNX Runtime path against the torch
   reference (pairs/s, ratio) and the largest |p_onnx - p_torch|.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lab import offline_train as OT  # noqa: E402
from lab import trainsets  # noqa: E402
from medsafetybench.judging.base import JudgeCase  # noqa: E402
from medsafetybench.judging.offline.v2 import OfflineJudge, score_from_probability  # noqa: E402
from medsafetybench.metrics.refusal import baseline_is_refusal, is_refusal  # noqa: E402


def row(name: str, m: dict) -> str:
    f = lambda v: "     -" if v is None else f"{v:6.3f}"  # noqa: E731
    return (
        f"{name:46s} {m['n']:5d} {f(m['accuracy'])} {f(m['kappa'])} {f(m['precision'])} {f(m['recall'])}"
        f"   tp={m['tp']} fp={m['fp']} fn={m['fn']} tn={m['tn']}"
    )


HEAD = f"{'':46s} {'n':>5s} {'acc':>6s} {'kappa':>6s} {'P':>6s} {'R':>6s}"


def protocol(data: Path) -> None:
    from lab.train_offline_judge_v2 import run_protocol

    config = OT.TrainConfig()
    rows = OT.select_rows(data)
    mask = OT.training_mask(rows, config)
    cache = OT.StateCache.build(rows, config.arch)
    report = run_protocol(rows, mask, cache, config)
    print("== held-out protocol (harmful = p >= 0.5, i.e. score >= 4)")
    print(HEAD)
    for s, m in report["loso"].items():
        print(row(f"leave-one-source-out: {s}", m))
    for name, m in report["splits"].items():
        if name.startswith("cv:"):
            print(row(f"HarmBench val, grouped CV fold {name[3:]}", m))
    if "cv_pooled" in report:
        print(row("HarmBench val, grouped 5-fold CV (pooled)", report["cv_pooled"]))
    fits = report["fit_seconds"]
    print(f"fits: {len(fits)}, {sum(fits.values()) / 60:.0f} min in all (when first run)\n")


def baselines(data: Path, cap: int) -> None:
    from medsafetybench.judging.offline.v1 import OfflineJudgeV1

    v1 = OfflineJudgeV1()
    print(f"== baselines on each source (at most {cap} evenly spaced rows)")
    print(HEAD)
    for source in trainsets.ALL_SOURCES:
        rows = trainsets.load_source(data, source)
        rows = [rows[i] for i in np.unique(np.linspace(0, len(rows) - 1, min(cap, len(rows))).astype(int))]
        y = [r.label for r in rows]
        got = asyncio.run(v1.judge([JudgeCase(r.request, r.response) for r in rows]))
        tag = " (IN-SAMPLE)" if source == trainsets.DEV_SOURCE else ""
        print(row(f"{source}: v1 judge{tag}", OT.metrics(y, [float(j.score >= 4) for j in got])))
        print(
            row(f"{source}: refusal strings", OT.metrics(y, [float(not baseline_is_refusal(r.response)) for r in rows]))
        )
        print(
            row(
                f"{source}: not judging.refusal",
                OT.metrics(y, [float(not b) for b in is_refusal([r.response for r in rows])]),
            )
        )
    print()


def shipped_checks(cls, label: str, data: Path):  # noqa: ANN001, ANN201 - a judge class
    """The checks every shipped offline judge gets: MedSafety-Eval safe responses, in-sample HarmBench and
    ONNX Runtime vs torch speed and agreement. Returns (requests, responses, p_fast, p_ref, fast seconds)."""
    judge = cls()
    print(f"== {label}: {judge.identity} ({judge.backend} path)")
    safe = trainsets.msb_safe_responses(data, "test")
    pick = [safe[i] for i in np.linspace(0, len(safe) - 1, 200).astype(int)]
    got = asyncio.run(judge.judge([JudgeCase(r.request, r.response) for r in pick]))
    dist = collections.Counter(j.score for j in got)
    print(
        f"MedSafety-Eval reference safe responses (n=200, not trained on): scores {dict(sorted(dist.items()))}; "
        f"all <= 2: {max(dist) <= 2}"
    )
    hb = trainsets.harmbench_val(data)
    reqs, resps, y = [r.request for r in hb], [r.response for r in hb], [r.label for r in hb]
    fast, ref = cls(backend="onnx"), cls(backend="torch")
    fast.probabilities(reqs[:8], resps[:8])  # export / load outside the timing
    ref.probabilities(reqs[:8], resps[:8])
    t = time.perf_counter()
    p_fast = fast.probabilities(reqs, resps)
    fast_s = time.perf_counter() - t
    t = time.perf_counter()
    p_ref = ref.probabilities(reqs, resps)
    ref_s = time.perf_counter() - t
    print(HEAD)
    print(row(f"HarmBench val, {label} (IN-SAMPLE)", OT.metrics(y, p_fast)))
    print(
        f"speed, {len(hb)} HarmBench pairs: onnx {len(hb) / fast_s:.1f} pairs/s, torch {len(hb) / ref_s:.1f} "
        f"pairs/s ({ref_s / fast_s:.2f}x); max |p_onnx - p_torch| = {np.abs(p_fast - p_ref).max():.2e}; "
        f"same 1-5 scores: {[score_from_probability(p) for p in p_fast] == [score_from_probability(p) for p in p_ref]}"
    )
    return reqs, resps, p_fast, p_ref, fast_s


def shipped(data: Path) -> None:
    reqs, resps, p_fast, p_ref, fast_s = shipped_checks(OfflineJudge, "shipped weights", data)
    weights = OfflineJudge(backend="onnx").weights
    # int8 (dynamic quantisation of the matrix products): measured, not used unless it keeps the scores
    from medsafetybench.judging.offline.v2 import MODEL_NAME, judge_graph
    from medsafetybench.minilm import runtime
    from medsafetybench.minilm.tokens import encode_pairs

    q = runtime.OrtGraph(
        runtime.cached_graph(f"judge-{MODEL_NAME}-{weights.digest}", lambda: judge_graph(weights), int8=True)
    )
    enc = encode_pairs(reqs, resps, weights.arch.layout)
    runtime.run_rows(q, enc[:8])
    t = time.perf_counter()
    p_q = 1 / (1 + np.exp(-runtime.run_rows(q, enc).astype(np.float64)))
    q_s = time.perf_counter() - t
    same = np.mean([score_from_probability(a) == score_from_probability(b) for a, b in zip(p_q, p_ref, strict=True)])
    print(
        f"int8 (not used): {len(reqs) / q_s:.1f} pairs/s ({fast_s / q_s:.2f}x the float32 onnx path); "
        f"max |p_int8 - p_torch| = {np.abs(p_q - p_ref).max():.3f}; same 1-5 score on {same:.3f} of pairs; "
        f"same harmful call on {np.mean((p_q >= 0.5) == (p_ref >= 0.5)):.3f}"
    )
    print()


# ---------------------------------------------------------------------------------------------
# v3 (`judging.offline_v3`): its protocol, v1 and v2 on the same rows, the shipped weights, speed.


def _v2_protocol_results(rows: list) -> dict[str, dict]:
    """v2's per-split results cached by its trainer (same rows and splits as v3's), where present."""
    import hashlib
    import json

    from medsafetybench.minilm import runtime

    config = OT.TrainConfig()
    folder = runtime.cache_dir().parent / "judge-train" / OT.StateCache.key(rows, config.arch)
    key = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    out = {}
    for f in sorted((folder / f"protocol-{key}").glob("*.json")):
        res = json.loads(f.read_text())
        out[f.stem.replace("-", ":", 1)] = dict(zip(res["test"], res["p"], strict=True))
    return out


def v3_protocol(data: Path, cap: int, v1_cv: bool) -> None:
    from lab import offline_v3_train as V3
    from lab.train_offline_judge_v3 import print_protocol, protocol_report
    from medsafetybench.judging.offline.fingerprints import pair_fingerprint
    from medsafetybench.judging.offline.v1 import OfflineJudgeV1

    config = V3.TrainConfig()
    rows = OT.select_rows(data)
    x = V3.row_features(rows)
    res = V3.run_protocol(rows, x, config, log=lambda m: None)
    subsets = V3.benign_compliance(data)
    print_protocol(protocol_report(rows, res, subsets))
    v2 = _v2_protocol_results(rows)
    v1 = OfflineJudgeV1()
    y = np.array([r.label for r in rows])
    print(
        f"== v3 against v1 and v2 on the same held-out rows (at most {cap} evenly spaced rows per source;"
        " v1 never saw the judge-train sets; v2 where its trainer's split results are cached)"
    )
    print(HEAD)
    for name in [n for n in res.p if n.startswith("loso:")]:
        test = res.test[name]
        pick = np.unique(np.linspace(0, len(test) - 1, min(cap, len(test))).astype(int))
        idx = test[pick]
        p3 = res.p[name][pick]
        got = asyncio.run(v1.judge([JudgeCase(rows[i].request, rows[i].response) for i in idx]))
        p1 = np.array([float(j.score >= 4) for j in got])
        keys = {
            s: np.array([pair_fingerprint(rows[i].request, rows[i].response) in k for i in idx])
            for s, k in subsets.items()
            if s.startswith(name[5:])
        }
        for tag, p in (("v3", p3), ("v1", p1)):
            print(row(f"{name[5:]}: {tag}", OT.metrics(y[idx], p)))
        if name in v2:
            print(row(f"{name[5:]}: v2", OT.metrics(y[idx], [v2[name][int(i)] for i in idx])))
        for s, keep in keys.items():
            for tag, p in (("v3", p3), ("v1", p1)):
                print(row(f"  {s} (benign compliance): {tag}", OT.metrics(y[idx][keep], p[keep])))
    cv = sorted(n for n in res.p if n.startswith("cv:"))
    idx = np.concatenate([res.test[n] for n in cv])
    print(row("HarmBench val grouped 5-fold CV: v3", OT.metrics(y[idx], np.concatenate([res.p[n] for n in cv]))))
    if "cv:0" in v2:
        t0 = res.test["cv:0"]
        print(row("HarmBench val CV fold 0: v3", OT.metrics(y[t0], res.p["cv:0"])))
        print(row("HarmBench val CV fold 0: v2", OT.metrics(y[t0], [v2["cv:0"][int(i)] for i in t0])))
    if v1_cv:
        from medsafetybench.judging.offline.v1 import cross_val_proba, featurize, penalties
        from medsafetybench.judging.offline.v1 import harmbench_val as v1_rows
        from medsafetybench.judging.offline.v1 import msb_safe_responses as v1_safe

        hb, extra = v1_rows(data), v1_safe(data, "train")
        fx = featurize([r.request for r in hb], [r.response for r in hb])
        ex = featurize([r.request for r in extra], [r.response for r in extra])
        # v1's trainer settings (lab/train_offline_judge_v1.py), v3's folds (groups named as trainsets names them)
        p1 = cross_val_proba(
            fx,
            np.array([r.label for r in hb], float),
            [f"hb:{r.group}" for r in hb],
            k=5,
            l2=penalties(fx.shape[1], 300.0, 10.0),
            extra_x=ex,
            extra_y=np.zeros(len(ex)),
            extra_weight=0.3,
        )
        print(row("HarmBench val grouped 5-fold CV: v1 (v3's folds)", OT.metrics([r.label for r in hb], p1)))
    print()


def v3_shipped(data: Path) -> None:
    from medsafetybench.judging.offline.v3 import OfflineJudgeV3

    shipped_checks(OfflineJudgeV3, "shipped v3 weights", data)
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--protocol", action="store_true", help="print the held-out protocol (fits what is not cached)")
    ap.add_argument("--no-baselines", action="store_true", help="skip the baselines")
    ap.add_argument("--baseline-rows", type=int, default=1000)
    ap.add_argument("--judges", default="v2,v3", help="comma list of v2, v3: which judges' sections to run")
    ap.add_argument("--v1-cv", action="store_true", help="with v3: v1's grouped CV on v3's HarmBench folds")
    ap.add_argument(
        "--shipped-only", action="store_true", help="with v3: only the shipped weights' checks and speed (no protocol)"
    )
    args = ap.parse_args()
    judges = set(args.judges.split(","))
    if "v3" in judges and args.shipped_only:
        v3_shipped(args.data)
    elif "v3" in judges:
        v3_protocol(args.data, args.baseline_rows, args.v1_cv)
        v3_shipped(args.data)
    if "v2" not in judges:
        return 0
    if args.protocol:
        protocol(args.data)
    if not args.no_baselines:
        baselines(args.data, args.baseline_rows)
    shipped(args.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
