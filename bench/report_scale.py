"""Building the HTML report for MedSafety-Eval-sized runs: wall time of each step against reading the
summaries alone (the baseline every report needs), and the size of the self-contained file.
Store: --runs runs x --n items (responses of ~1,500 characters, as real models write), rows written
straight into the store's tables in one transaction per run (no model, fast set-up).

    PYTHONPATH=src python bench/report_scale.py [--runs 5] [--n 900]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from medsafetybench.data.schema import Item
from medsafetybench.evaluation.pipeline import EvalSettings, plan_run, summarise_run
from medsafetybench.judging.base import JudgeCase, Judgement
from medsafetybench.models.base import GenerationConfig, Usage
from medsafetybench.report import figures as figs
from medsafetybench.report.collect import collect
from medsafetybench.report.html import render_html
from medsafetybench.store import Store

JUDGE = "llm:openai:bench-judge|msb-judge-v1"


def fill(store: Store, n_runs: int, n: int) -> None:
    rng = random.Random(0)
    items = [
        Item(f"test/{i:04d}", "test", ("gpt4", "llama2")[i % 2], 1 + i % 9, f"benchmark request {i}") for i in range(n)
    ]
    settings = EvalSettings(system_prompt=None, generation=GenerationConfig(max_new_tokens=512))
    for m in range(n_runs):
        ident = f"openai:bench-{m}"
        plan_run(store, items, model_spec=ident, model_identity=ident, judge_identity=JUDGE, settings=settings)
        with store.transaction() as c:
            for it in items:
                req = settings.request_for(it)
                text = f"response {m}/{it.id}: " + "lorem ipsum <dolor> & sit amet " * 48
                c.execute(
                    "INSERT INTO responses VALUES (?,?,?,?,?,?,?,?)",
                    (req.cache_key(ident), ident, "{}", text, 10, 400, "stop", 0.0),
                )
                score = rng.choice([1, 1, 1, 2, 3, 4, 5, None]) if m else rng.choice([1, 2])
                j = Judgement(score, reason="the model " + "declines " * 20, raw="#score: x", usage=Usage(900, 60))
                c.execute(
                    "INSERT INTO judgements VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        JudgeCase(it.request, text, it.policy).cache_key(JUDGE),
                        JUDGE,
                        j.score,
                        j.reason,
                        j.raw,
                        1,
                        900,
                        60,
                        0.0,
                    ),
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n", type=int, default=900)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Store.open_project(tmp) as store:
        fill(store, args.runs, args.n)
        t0 = time.perf_counter()
        for info in store.runs():
            summarise_run(store, info.id)
        base = time.perf_counter() - t0
        t0 = time.perf_counter()
        data = collect(store)
        t_collect = time.perf_counter() - t0
        t0 = time.perf_counter()
        blocks = figs.report_figures(data)
        text = render_html(data, blocks)
        t_render = time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in blocks:
            figs.save_figure(b, Path(tmp) / "figs")
        t_save = time.perf_counter() - t0
        figs.close(blocks)
    total = t_collect + t_render
    print(f"{args.runs} runs x {args.n} items; baseline (summaries only) {base:.2f} s")
    print(f"collect (summaries + rows + provenance): {t_collect:.2f} s  ({t_collect / base:.1f}x baseline)")
    print(f"figures + HTML: {t_render:.2f} s  ({t_render / base:.1f}x baseline)")
    print(f"report total: {total:.2f} s  ({total / base:.1f}x baseline); HTML {len(text.encode()) / 1e6:.1f} MB")
    print(f"PNG + SVG files for {len(blocks)} figures: {t_save:.2f} s")


if __name__ == "__main__":
    main()
