"""Fidelity to lm-evaluation-harness itself: lm-eval 0.4.13 (the dev extra) runs its own task configs
(`medqa_4options`, `medmcqa`, `pubmedqa`, `mmlu_<subject>`, included by local YAMLs that only swap the
dataset for a slice of ../shared/data/medqa) with its `hf` model on the tiny Llama saved to disk, and our
`evaluate_medqa` must give the same prediction for every question and log-likelihoods within 1e-4, with
BOS (the harness default) and without (`add_bos_token=False` vs `--no-add-bos`). Before 0.2 our scorer
never added BOS: its log-likelihoods differed from the harness default by up to 1.39 (this test fails)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.paths import SHARED
from medsafetybench.medqa import evaluate_medqa
from medsafetybench.medqa.tasks import resolve_tasks
from medsafetybench.store import Store

pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed (pip install -e '.[dev]')")
pytest.importorskip("transformers")

DATA = SHARED / "data" / "medqa"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} (the shared medical QA data) is absent")
LIMIT = 24  # questions per task: 9 tasks, 216 questions


def _ours(store: Store, model_dir: Path, add_bos: bool, tasks: list[str] | None = None):
    res = evaluate_medqa(store, f"hf:{model_dir}", tasks, DATA, LIMIT, 7, add_bos=add_bos)
    by_task = {}
    for rec in res.records:
        by_task.setdefault(rec.task, []).append(rec)
    return res, by_task


def _check(harness: dict, ours: dict, tasks: list[str]) -> None:
    for task in tasks:
        ref, got = harness[task], ours[task]
        assert len(ref) == len(got) == LIMIT, task
        choices = resolve_tasks([task])[0].choices
        for h, r in zip(ref, got, strict=True):
            assert r.lls == pytest.approx(list(h.lls), abs=1e-4), (task, r.question_id)
            pred = max(range(len(h.lls)), key=lambda j: h.lls[j])
            assert r.prediction == choices[pred], (task, r.question_id)
            assert float(r.correct) == h.acc, (task, r.question_id)


def test_same_predictions_as_lm_eval_with_bos(tiny_model_dir: Path, tmp_path: Path) -> None:
    from medsafetybench.medqa import lmeval

    harness = lmeval.run(tiny_model_dir, DATA, tmp_path / "tasks", None, LIMIT, batch_size=5, acc_norm_everywhere=True)
    with Store(tmp_path / "store.db") as store:
        res, ours = _ours(store, tiny_model_dir, add_bos=True)
    names = [t.name for t in resolve_tasks(None)]
    _check(harness, ours, names)
    # acc_norm: where the harness reports it (medqa, medmcqa) ours equals it; the harness' own acc_norm on
    # pubmedqa (per-character normalisation, which favours 'maybe') is what `records` hold as prediction_norm
    for task in names:
        for h, r in zip(harness[task], ours[task], strict=True):
            assert float(r.prediction_norm == r.gold) == h.acc_norm, (task, r.question_id)
    by_name = {t.name: t for t in res.tasks}
    assert by_name["medqa"].acc_norm is not None and by_name["medmcqa"].acc_norm is not None
    assert by_name["pubmedqa"].acc_norm is None and by_name["mmlu_anatomy"].acc_norm is None  # not harness metrics


def test_same_predictions_as_lm_eval_without_bos(tiny_model_dir: Path, tmp_path: Path) -> None:
    from medsafetybench.medqa import lmeval

    tasks = ["medmcqa", "pubmedqa"]
    harness = lmeval.run(tiny_model_dir, DATA, tmp_path / "tasks", tasks, LIMIT, batch_size=5, add_bos=False)
    with Store(tmp_path / "store.db") as store:
        _, ours = _ours(store, tiny_model_dir, add_bos=False, tasks=tasks)
        _, with_bos = _ours(store, tiny_model_dir, add_bos=True, tasks=tasks)
    _check(harness, ours, tasks)
    # and the two settings really differ: a BOS changes the log-likelihoods
    diffs = [
        abs(x - y)
        for a, b in zip(ours["medmcqa"], with_bos["medmcqa"], strict=True)
        for x, y in zip(a.lls, b.lls, strict=True)
    ]
    assert max(diffs) > 0.05 and sum(d > 1e-4 for d in diffs) > len(diffs) / 2
