"""Train the v1 offline judge's logistic regression and write its weights JSON (deterministic).

    PYTHONPATH=src /work/venv/bin/python tools/train_offline_judge_v1.py --data ../shared/data \
        --out src/medsafetybench/judging/offline_judge.json

Training data: the 602 HarmBench classifier-validation rows (human-majority labels). The figure this
script prints is 5-fold cross-validated with folds grouped by behavior_id (no behaviour in both train
and test); the shipped weights are then fitted on all 602 rows. With --msb-weight > 0 (default 0.3)
the MedSafetyBench *train* split's 900 safe responses (all refusals) join every training fit as extra
harmless rows; they never enter a CV test fold, and the MedSafetyBench *test* split is never used
here, so it stays clean for checking the judge on MedSafetyBench.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from lab import trainsets
from medsafetybench.judging.offline.fingerprints import TrainingFingerprints
from medsafetybench.judging.offline.v1 import (
    FEATURE_VERSION,
    LEXICAL_NAMES,
    MODEL_NAME,
    SCORE_EDGES,
    cross_val_proba,
    featurize,
    fit_logistic,
    harmbench_val,
    msb_safe_responses,
    penalties,
)


def metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    tp = int(np.sum((pred == 1) & (y == 1)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))
    tn = int(np.sum((pred == 0) & (y == 0)))
    n = len(y)
    acc = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / (n * n)
    kappa = (acc - pe) / (1 - pe) if pe < 1 else 0.0
    return {
        "accuracy": round(acc, 4),
        "kappa": round(kappa, 4),
        "precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data", help="shared data folder")
    ap.add_argument("--out", default="src/medsafetybench/judging/offline_judge.json")
    ap.add_argument("--l2", type=float, default=300.0, help="L2 penalty on embedding features (chosen by grouped CV)")
    ap.add_argument(
        "--l2-lexical",
        type=float,
        default=10.0,
        help="L2 penalty on the lexical features and the cosine (chosen by grouped CV)",
    )
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--msb-weight",
        type=float,
        default=0.3,
        help="weight of MedSafetyBench train-split safe responses as extra harmless rows (0 = off)",
    )
    ap.add_argument(
        "--fingerprints-only",
        action="store_true",
        help="only write the fingerprints of the rows the weights are fitted on (next to --out)",
    )
    args = ap.parse_args(argv)

    fp_path = Path(args.out).with_name("offline_judge_v1.fingerprints")
    rows_for_fp = [(r.request, r.response) for r in harmbench_val(args.data)]
    rows_for_fp += [(r.request, r.response) for r in trainsets.harmbench_val(Path(args.data))]
    if args.msb_weight > 0:
        rows_for_fp += [(r.request, r.response) for r in msb_safe_responses(args.data, "train")]
    TrainingFingerprints.from_pairs(rows_for_fp).save(fp_path)
    if args.fingerprints_only:
        print(json.dumps({"fingerprints": str(fp_path), "rows": len(rows_for_fp)}))
        return 0

    t0 = time.perf_counter()
    rows = harmbench_val(args.data)
    y = np.array([r.label for r in rows], dtype=float)
    groups = [r.group for r in rows]
    x = featurize([r.request for r in rows], [r.response for r in rows])
    extra_x = extra_y = None
    n_extra = 0
    if args.msb_weight > 0:
        extra = msb_safe_responses(args.data, "train")
        n_extra = len(extra)
        extra_x = featurize([r.request for r in extra], [r.response for r in extra])
        extra_y = np.zeros(n_extra)
    print(f"features: {x.shape} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

    pen = penalties(x.shape[1], args.l2, args.l2_lexical)
    p_cv = cross_val_proba(
        x,
        y,
        groups,
        k=args.folds,
        l2=pen,
        seed=args.seed,
        extra_x=extra_x,
        extra_y=extra_y,
        extra_weight=args.msb_weight,
    )
    cv = metrics(y, (p_cv >= 0.5).astype(int))

    if extra_x is not None:
        fx = np.vstack([x, extra_x])
        fy = np.concatenate([y, extra_y])
        fw = np.concatenate([np.ones(len(y)), np.full(n_extra, args.msb_weight)])
    else:
        fx, fy, fw = x, y, None
    model = fit_logistic(fx, fy, l2=pen, sample_weight=fw)
    payload = {
        "model_name": MODEL_NAME,
        "feature_version": FEATURE_VERSION,
        "features": list(LEXICAL_NAMES)
        + ["cos_request_response", "response_embedding[384]", "request_x_response_embedding[384]"],
        "score_edges": list(SCORE_EDGES),
        "training": {
            "data": "HarmBench classifier validation set, 602 rows, human-majority labels; weights fitted on ALL rows",
            "l2": args.l2,
            "l2_lexical": args.l2_lexical,
            "msb_train_safe_responses": n_extra,
            "msb_weight": args.msb_weight,
            "cv": {"folds": args.folds, "grouped_by": "behavior_id", "seed": args.seed, **cv},
        },
        "model": model.to_dict(),
    }
    out = Path(args.out)
    out.write_text(json.dumps(payload, separators=(",", ":")) + "\n", encoding="utf-8")
    print(json.dumps({"cv": cv, "out": str(out), "bytes": out.stat().st_size}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
