"""Train the offline judge v2 (MiniLM cross-encoder, LoRA on the top layers) and write its weights.

    nice .venv/bin/python tools/train_offline_judge.py --data ../shared/data --protocol --final

Deterministic for a given data folder, seed and thread count (`--threads`, default 2). Steps:

1. rows: every source of `judging.trainsets` (five judge-train sets and HarmBench val), exact duplicates
   and MedSafety-Eval reference safe responses removed; fits train on GPTFuzz thinned to 30 responses
   per question (`judging.offline_train`);
2. the lower-layer cache (`StateCache`, ~1.4 GB under `$MEDSAFETYBENCH_CACHE/judge-train/`, built
   once; ~20-30 min on 2 busy cores);
3. `--protocol`: the held-out protocol, one fit per split: leave-one-source-out over the five
   judge-train sets (train on every other source, HarmBench val included; test on every row of the
   left-out source), then 5-fold CV on HarmBench val grouped by behaviour (train on all training
   sources and four folds). Each split's result is kept in the cache folder, so a killed run resumes.
   Writes `--report` (JSON) and prints the figures;
4. `--final`: one fit on all training rows, written to `--out` with the fingerprints of every row it
   was trained on (`judging.fingerprints`) and the training record in its metadata.

Each fit is ~10-25 min on 2 shared CPU cores (3 epochs over ~1.2M tokens of the top two layers).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from lab import offline_train as OT
from lab.trainsets import TRAIN_SOURCES
from medsafetybench.judging.offline.fingerprints import TrainingFingerprints
from medsafetybench.judging.offline.v2 import LAYERS, save_weights, trainable_tensors

ROOT = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_protocol(
    rows: list, mask: np.ndarray, cache: OT.StateCache, config: OT.TrainConfig, only: list[str] | None = None
) -> dict:
    """Fit and test every split (results cached per split); returns the report."""
    key = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    folder = cache.folder / f"protocol-{key}"
    folder.mkdir(exist_ok=True)
    results: dict[str, dict] = {}
    oof: dict[int, float] = {}
    for split in OT.protocol_splits(rows, mask, seed=config.seed):
        if only and not any(split.name.startswith(o) for o in only):
            continue
        path = folder / f"{split.name.replace(':', '-')}.json"
        if path.is_file():
            res = json.loads(path.read_text())
        else:
            log(f"{split.name}: fit on {len(split.train)} rows, test {len(split.test)}")
            t0 = time.perf_counter()
            encoder, head = OT.fit(cache, rows, split.train, config, log=log)
            fit_s = time.perf_counter() - t0
            p = OT.predict(cache, encoder, head, split.test, config.arch)
            res = {
                "metrics": OT.metrics([rows[i].label for i in split.test], p),
                "fit_seconds": round(fit_s),
                "test": split.test.tolist(),
                "p": [round(float(x), 5) for x in p],
            }
            path.write_text(json.dumps(res))
        results[split.name] = res
        if split.name.startswith("cv:"):
            oof.update(zip(res["test"], res["p"], strict=True))
        log(f"{split.name}: {res['metrics']}")
    report: dict = {
        "config": config.to_dict(),
        "splits": {k: v["metrics"] for k, v in results.items()},
        "fit_seconds": {k: v["fit_seconds"] for k, v in results.items()},
    }
    if oof:
        idx = sorted(oof)
        report["cv_pooled"] = OT.metrics([rows[i].label for i in idx], [oof[i] for i in idx])
    # per-source figures inside the CV folds' test rows are HarmBench only; LOSO gives one per source
    report["loso"] = {s: results[f"loso:{s}"]["metrics"] for s in TRAIN_SOURCES if f"loso:{s}" in results}
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="shared data folder")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "src" / "medsafetybench" / "judging" / "offline_judge_v2.safetensors"
    )
    ap.add_argument("--report", type=Path, default=None, help="write the protocol's figures here (JSON)")
    ap.add_argument("--protocol", action="store_true", help="run the held-out protocol")
    ap.add_argument("--only", default=None, help="comma list of split-name prefixes (e.g. loso:dices,cv:0)")
    ap.add_argument("--final", action="store_true", help="fit on every training row and write --out")
    ap.add_argument("--epochs", type=int, default=OT.TrainConfig.epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    config = OT.TrainConfig(epochs=args.epochs, seed=args.seed, threads=args.threads)

    rows = OT.select_rows(args.data)
    mask = OT.training_mask(rows, config)
    log(f"{len(rows)} rows, {int(mask.sum())} trainable")
    cache = OT.StateCache.build(rows, config.arch, log=log)
    if args.protocol:
        report = run_protocol(rows, mask, cache, config, args.only.split(",") if args.only else None)
        text = json.dumps(report, indent=1)
        if args.report:
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(text + "\n")
        print(text)
    if args.final:
        idx = np.flatnonzero(mask)
        t0 = time.perf_counter()
        encoder, head = OT.fit(cache, rows, idx, config, log=log)
        tensors = trainable_tensors(encoder, head, config.arch, dtype=np.float16)  # adapters in float16
        trained = TrainingFingerprints.from_pairs((rows[i].request, rows[i].response) for i in idx)
        counts: dict[str, list[int]] = {}
        for i in idx:
            c = counts.setdefault(rows[i].source, [0, 0])
            c[rows[i].label] += 1
        meta = {
            "trained_on": {s: {"harmless": c[0], "harmful": c[1]} for s, c in sorted(counts.items())},
            "config": config.to_dict(),
            "layers_adapted": list(range(config.arch.lower_layers, LAYERS)),
            "data": "judge-train (gptfuzz, openai-rbr-gold, dices, medicheck, diasafety) and judge-dev "
            "(HarmBench val); mapping in lab.trainsets",
        }
        digest = save_weights(args.out, config.arch, tensors, trained, meta)
        log(
            f"fit {time.perf_counter() - t0:.0f} s; wrote {args.out} ({args.out.stat().st_size} bytes, digest "
            f"{digest}), {len(trained)} training rows"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
