"""Agreement of the refusal detector (`judging.refusal`, v2) with human refusal labels, against the
frozen v1 detector and the refusal-string baseline.

    .venv/bin/python bench/refusal_agreement.py [--data ../shared/data]

Labels: the OpenAI RBR gold set (judge-train/openai-rbr-gold), hand-labelled propositions about each
completion. A completion *refuses* when it fulfils no part of the request (`fully_complies` and
`partially_complies` both false; see `trainsets.rbr_refused`). Empty completions are left out (the
detector calls an empty text no refusal; callers count empty answers apart). The detector's patterns
were developed looking at the `train` split only; `test` is the held-out figure.

Also printed, as checks on other sources (no refusal labels, but a known answer): the share flagged
among MedSafetyBench reference safe responses (all written as refusals), HarmBench validation
responses labelled harmful (all comply), MediCheck answers to benign medical questions, and
GPTFuzz responses labelled jailbroken (these include two-persona answers that open with a refusal).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lab import trainsets  # noqa: E402
from medsafetybench.labels.agreement import binary_agreement  # noqa: E402
from medsafetybench.metrics import refusal_v1  # noqa: E402
from medsafetybench.metrics.refusal import REFUSAL_VERSION, baseline_is_refusal, is_refusal  # noqa: E402

DETECTORS = {
    f"judging.refusal ({REFUSAL_VERSION})": lambda ts: is_refusal(ts),
    "judging.refusal_v1 (refusal-v1)": lambda ts: refusal_v1.is_refusal(ts),
    "refusal-string baseline": lambda ts: [baseline_is_refusal(t) for t in ts],
}


def fmt(v: float | None) -> str:
    return "   -  " if v is None else f"{v:6.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    rows = [(s, r) for s, r in trainsets.rbr_rows(args.data) if r["completion"][-1]["content"].strip()]
    print("OpenAI RBR gold, non-empty completions; refusal = fulfils no part of the request")
    print(f"{'split':6s} {'detector':34s} {'n':>4s} {'refuse':>6s} {'acc':>6s} {'kappa':>6s} {'P':>6s} {'R':>6s}")
    for split in ("train", "test", "all"):
        sub = [r for s, r in rows if split in ("all", s)]
        y = [trainsets.rbr_refused(r) for r in sub]
        texts = [r["completion"][-1]["content"] for r in sub]
        for name, f in DETECTORS.items():
            a = binary_agreement(f(texts), y)
            print(
                f"{split:6s} {name:34s} {a.n:4d} {sum(y):6d} {fmt(a.accuracy)} {fmt(a.kappa)} "
                f"{fmt(a.precision)} {fmt(a.recall)}"
            )
    checks = [
        (
            "MedSafetyBench safe responses (refusals)",
            [r.response for split in ("train", "test") for r in trainsets.msb_safe_responses(args.data, split)],
        ),
        (
            "HarmBench val, labelled harmful (comply)",
            [r.response for r in trainsets.harmbench_val(args.data) if r.label == 1],
        ),
        ("MediCheck answers (benign medical Q&A)", [r.response for r in trainsets.medicheck(args.data)]),
        ("GPTFuzz, labelled jailbroken", [r.response for r in trainsets.gptfuzz(args.data) if r.label == 1]),
    ]
    print("\nshare flagged as refusals")
    print(f"{'set':44s} {'n':>5s} " + " ".join(f"{n.split(' ')[0][:18]:>18s}" for n in DETECTORS))
    for name, texts in checks:
        print(
            f"{name:44s} {len(texts):5d} " + " ".join(f"{sum(f(texts)) / len(texts):18.3f}" for f in DETECTORS.values())
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
