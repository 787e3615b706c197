"""The worked example of docs/reports.md "Human labels and calibrated scores", on real human labels.

HarmBench's classifier-validation set (../shared/data/judge-dev/harmbench_val) holds 602 (jailbreak
prompt, completion) pairs, each labelled by three people. This script

    build     replays those completions as a model (a local fake OpenAI server answers each prompt with its
              stored completion) and evaluates it with `medsafety eval --judge offline`;
    fill      fills a sample sheet written by `medsafety label RUN --sample N --export FILE` with the
              people's majority label (harmful -> 5, not harmful -> 1): a stand-in for a labeller;
    coverage  repeats draw -> label -> correct over many seeds (labels from the data, nothing stored) and
              reports how often the 95% interval of the corrected harmful share (PPI, and PPI++ with a
              tuned lambda) holds the people's share over all 602 pairs, against the judge alone and the
              labels alone.

    python tools/labels_demo.py build --data ../shared/data --project demo
    python tools/labels_demo.py fill sample.csv --data ../shared/data
    python tools/labels_demo.py coverage --data ../shared/data --project demo --run harmbench-replay

Note: the offline judge was fitted on these 602 pairs (tools/train_offline_judge.py), so its errors here
are in-sample errors, smaller than on new data.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

FILE = "judge-dev/harmbench_val/harmbench_val_flat.jsonl"


def rows(data: Path) -> list[dict]:
    with open(data / FILE, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build(data: Path, project: Path) -> None:
    from medsafetybench.cli import main
    from medsafetybench.testing.fake_openai import FakeOpenAIServer
    from medsafetybench.testing.responders import last_user

    pairs = rows(data)
    project.mkdir(parents=True, exist_ok=True)
    requests = project / "harmbench_requests.csv"
    with open(requests, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "request"])
        w.writerows([r["id"], r["test_case"]] for r in pairs)
    replies = {r["test_case"].strip(): r["generation"] for r in pairs}
    with FakeOpenAIServer(lambda req: replies[last_user(req).strip()]) as srv:
        args = [
            "eval",
            "--input",
            str(requests),
            "--model",
            f"openai:harmbench-replay@{srv.base_url}",
            "--judge",
            "offline",
            "--system-prompt",
            "none",
            "--project",
            str(project),
        ]
        print("$ medsafety " + " ".join(args), file=sys.stderr)
        try:
            main(args)
        except SystemExit as exc:
            if exc.code:
                raise
    from medsafetybench.store import Store

    with Store.open_project(project) as store:
        run = store.runs()[-1]
        store.set_run_fields(run.id, name="harmbench-replay")
        print(f"run {run.id} named harmbench-replay")


def fill(sheet: Path, data: Path) -> None:
    majority = {f"user/harmbench_requests/{r['id']}": r["human_majority"] for r in rows(data)}
    with open(sheet, encoding="utf-8", newline="") as f:
        table = list(csv.DictReader(f))
    for r in table:
        r["score"] = "5" if majority[r["item_id"]] else "1"
    with open(sheet, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    print(f"filled {len(table)} scores in {sheet}")


def coverage(data: Path, project: Path, run: str, seeds: int, n: int) -> None:
    from medsafetybench.labels.calibration import ppi_mean_ci, stratified_ppi
    from medsafetybench.labels.sample import draw, sample_frame, stratum_key
    from medsafetybench.store import Store

    majority = {f"user/harmbench_requests/{r['id']}": r["human_majority"] for r in rows(data)}
    with Store.open_project(project) as store:
        info = store.run(run)
        judged = [r for r in store.run_rows(info.id) if r.score is not None]
        frame = sample_frame(judged)
    ids = [r.item_id for r in judged]
    pos = {i: k for k, i in enumerate(ids)}
    f = np.array([float(r.harmful) for r in judged])
    y_all = np.array([float(majority[i]) for i in ids])
    strata = np.array([stratum_key(r.principle, r.source) for r in judged])
    truth = y_all.mean()
    z = 1.959963984540054
    raw_half = z * f.std(ddof=1) / np.sqrt(f.size)
    hits = {"PPI": 0, "PPI++": 0, "labels only": 0}
    widths: dict[str, list[float]] = {k: [] for k in hits}
    for s in range(seeds):
        idx = np.array([pos[i] for i, _ in draw(frame, n, s)])
        est = stratified_ppi(y_all[idx], f[idx], strata[idx], f, strata, bounds=(0, 1))
        tuned = stratified_ppi(y_all[idx], f[idx], strata[idx], f, strata, lam=None, bounds=(0, 1))
        _, lo, hi = ppi_mean_ci(y_all[idx], f[idx], f, lam=0.0)  # the labels alone: a plain normal interval
        for name, (a, b) in (
            ("PPI", (est.low, est.high)),
            ("PPI++", (tuned.low, tuned.high)),
            ("labels only", (lo, hi)),
        ):
            hits[name] += a <= truth <= b
            widths[name].append(b - a)
    print(
        f"{len(ids)} judged pairs; people's harmful share {truth:.3f}; judge alone {f.mean():.3f} "
        f"[{f.mean() - raw_half:.3f}, {f.mean() + raw_half:.3f}] (error {f.mean() - truth:+.3f})"
    )
    for name in hits:
        print(
            f"{name:>11}: {n} labels x {seeds} seeds: 95% interval holds the truth {hits[name] / seeds:.0%}, "
            f"mean width {np.mean(widths[name]):.3f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("build", "fill", "coverage"):
        s = sub.add_parser(name)
        s.add_argument("--data", type=Path, default=Path("../shared/data"))
        if name == "fill":
            s.add_argument("sheet", type=Path)
        else:
            s.add_argument("--project", type=Path, required=True)
        if name == "coverage":
            s.add_argument("--run", required=True)
            s.add_argument("--seeds", type=int, default=200)
            s.add_argument("--n", type=int, default=100)
    a = p.parse_args()
    if a.cmd == "build":
        build(a.data, a.project)
    elif a.cmd == "fill":
        fill(a.sheet, a.data)
    else:
        coverage(a.data, a.project, a.run, a.seeds, a.n)


if __name__ == "__main__":
    main()
