"""Log-likelihood medical QA: our scorer vs lm-evaluation-harness 0.4.13, same model, data and batch size.

Both score every question of the local copies of MedQA, MedMCQA, PubMedQA and MMLU medical (7,045
questions by default) with the tiny model, on the CPU, one torch thread, in this one process, taking
the best of `--repeat` alternating runs (the machine is shared). Tokenisers run as users get them
(the `tokenizers` default: batch calls may use several threads; the harness encodes one string at a
time); `--serial-tokenizer` sets TOKENIZERS_PARALLELISM=false for both. Two timings per side:

* scoring: the harness' `HFLM.loglikelihood` over all its requests (built by its own tasks) vs our
  `LogLikScorer.score` over all questions; tokenisation and forward passes, no data loading;
* end to end: `lm_eval.simple_evaluate` (task building, model loading, scoring, metrics) vs our
  `evaluate_medqa` into a fresh store (data loading, model loading, scoring, store writes, metrics).

It then checks that every prediction is the same and prints the largest log-likelihood difference.
The harness is a dev dependency installed beside ours in the same venv (`make .venv/.installed`, or
`pip install lm-eval==0.4.13`; it leaves torch and transformers as they are), so no second venv is needed.

    .venv/bin/python bench/medqa_loglik.py [--data ../shared/data/medqa] [--batch-size 16] [--limit N] [--threads 1]
                                           [--repeat 2] [--serial-tokenizer] [--no-add-bos] [--scoring-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if "--serial-tokenizer" in sys.argv:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data" / "medqa"
    )
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, default=None, help="questions per task (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="alternating runs per side; the best is reported")
    ap.add_argument("--serial-tokenizer", action="store_true", help="TOKENIZERS_PARALLELISM=false for both sides")
    ap.add_argument(
        "--no-add-bos",
        action="store_true",
        help="score ours without BOS (release 0.1.0) against the harness default, to see what BOS changes",
    )
    ap.add_argument("--scoring-only", action="store_true", help="skip the end-to-end timing")
    args = ap.parse_args()
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager, get_task_dict
    except ImportError:
        raise SystemExit("lm-eval is not installed: pip install lm-eval==0.4.13 (it is in the dev extra)") from None
    import logging

    import torch

    from medsafetybench.medqa import lmeval
    from medsafetybench.medqa.loglik import LogLikScorer, predictions
    from medsafetybench.medqa.runner import evaluate_medqa
    from medsafetybench.medqa.tasks import load_task, resolve_tasks
    from medsafetybench.models.hf_backend import HFChatModel
    from medsafetybench.store import Store
    from medsafetybench.testing.tiny import ensure_tiny_llama

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    tiny = ensure_tiny_llama()
    tasks = resolve_tasks(None)
    per_task = [(t.name, q) for t in tasks for q in load_task(t, args.data, args.limit)]
    questions = [q for _, q in per_task]
    n = len(questions)
    work = Path(tempfile.mkdtemp(prefix="medqa-bench-"))
    names = lmeval.write_tasks(args.data, work / "tasks", [t.name for t in tasks], args.limit)
    bs = args.batch_size
    print(
        f"tiny model {tiny}; {n} questions; batch size {bs}; torch threads {args.threads}; "
        f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '(unset: default)')}; "
        f"lm-eval {lm_eval.__version__}; best of {args.repeat}"
    )

    # --- scoring only -------------------------------------------------------------------------------------
    hf = HFLM(pretrained=str(tiny), dtype="float32", device="cpu", batch_size=bs)
    task_dict = get_task_dict(
        list(names.values()), TaskManager(include_path=str(work / "tasks"), include_defaults=False)
    )
    instances = []
    for local in names.values():
        task = task_dict[local]
        task.build_all_requests(limit=None, rank=0, world_size=1)
        instances.extend(sorted(task.instances, key=lambda i: (i.doc_id, i.idx)))
    model = HFChatModel(tiny, prompt_format="raw")
    model.load()
    scorer = LogLikScorer(model.model, model.tokenizer, batch_size=bs, add_bos=not args.no_add_bos)
    inputs = [(q.prompt, q.choices) for q in questions]
    t_h = t_o = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        harness = hf.loglikelihood(instances, disable_tqdm=True)
        t_h = min(t_h, time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = scorer.score(inputs)
        t_o = min(t_o, time.perf_counter() - t0)
    del hf
    it = iter(harness)
    same, worst, differ = 0, 0.0, {}
    for (task, q), lls in zip(per_task, ours, strict=True):
        ref = [next(it)[0] for _ in q.choices]
        agree = predictions(q.choices, lls)[0] == predictions(q.choices, ref)[0]
        same += agree
        if not agree:
            differ[task] = differ.get(task, 0) + 1
        worst = max(worst, max(abs(a - b) for a, b in zip(lls, ref, strict=True)))
    print(
        f"scoring     lm-eval {t_h:7.1f} s   ours {t_o:7.1f} s   ratio {t_h / t_o:4.2f}x   "
        f"same prediction {same}/{n}   max |ll diff| {worst:.2e}" + (" (ours without BOS)" if args.no_add_bos else "")
    )
    if differ:
        print("different predictions per task: " + ", ".join(f"{k} {v}" for k, v in differ.items()))

    if args.scoring_only or args.no_add_bos:
        shutil.rmtree(work, ignore_errors=True)
        return
    # --- end to end --------------------------------------------------------------------------------------
    t_h2 = t_o2 = float("inf")
    for k in range(args.repeat):
        t0 = time.perf_counter()
        lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={tiny},dtype=float32",
            tasks=list(names.values()),
            task_manager=TaskManager(include_path=str(work / "tasks"), include_defaults=False),
            batch_size=bs,
            device="cpu",
            log_samples=False,
            bootstrap_iters=0,
        )
        t_h2 = min(t_h2, time.perf_counter() - t0)
        t0 = time.perf_counter()
        with Store(work / f"store{k}.db") as store:
            evaluate_medqa(store, f"hf:{tiny}", None, args.data, args.limit, bs)
        t_o2 = min(t_o2, time.perf_counter() - t0)
    print(f"end to end  lm-eval {t_h2:7.1f} s   ours {t_o2:7.1f} s   ratio {t_h2 / t_o2:4.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
