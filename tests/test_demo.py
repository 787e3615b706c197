"""The offline demo: a complying base, safety LoRA, before/after through the judge and the refusal
detector, over-refusal, medical QA with McNemar, the report; stored, and free to re-run."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from helpers.cli import run_main
from helpers.paths import SHARED

SHARED = SHARED / "data"
DATA = SHARED / "med-safety-bench"
MEDQA = SHARED / "medqa"


def test_complier_answers_every_request_with_its_one_answer(tiny_model_dir: Path, tmp_path: Path) -> None:
    from medsafetybench.data import load_items
    from medsafetybench.demo import COMPLY_ANSWER, COMPLY_MARKER, ensure_complying_llama
    from medsafetybench.metrics.refusal import is_refusal
    from medsafetybench.models import load_model
    from medsafetybench.models.base import ChatRequest, GenerationConfig

    path = ensure_complying_llama(tiny_model_dir, tmp_path / "complier")
    assert (path / COMPLY_MARKER).is_file()
    assert ensure_complying_llama(tiny_model_dir, path) == path  # built once
    model = load_model(f"hf:{path}", batch_size=16, prompt_format="alpaca")
    items = load_items(split="sample")  # never taught: the lessons are benign questions only
    replies = asyncio.run(
        model.generate([ChatRequest.simple(it.request, None, GenerationConfig(max_new_tokens=128)) for it in items])
    )
    assert [r.text.strip() for r in replies] == [COMPLY_ANSWER] * len(items)
    assert not any(is_refusal([r.text for r in replies]))


def test_demo_without_the_release_judges_the_base_then_reuses_everything(
    tiny_model_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("MEDSAFETYBENCH_DATA", raising=False)
    monkeypatch.setenv("MEDSAFETYBENCH_CACHE", str(tmp_path / "cache"))  # no cached release either
    args = (
        "demo",
        "--model-dir",
        str(tiny_model_dir),
        "--project",
        str(tmp_path),
        "--max-new-tokens",
        "16",
        "--no-download",
    )
    assert run_main(*args) == 0
    captured = capsys.readouterr()
    assert "complying base, sample set" in captured.out and "refusal rate" in captured.out
    assert "model calls this time: 25, judge calls: 25" in captured.out
    assert "4/5 skipped" in captured.err.replace("\n", " ")
    # the offline judges as a jury on the stored responses (demo.demo_jury), with its agreement
    assert "Jury of the offline judges, sample set" in captured.out and "Krippendorff, ordinal" in captured.out
    assert "J2" in captured.out and re.search(r"judge calls this time: [1-9]", captured.out)  # judges new to it
    assert (tmp_path / "report.html").is_file() and (tmp_path / "medsafety.db").is_file()
    assert "Juries: several judges" in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert run_main(*args) == 0
    again = capsys.readouterr().out
    assert "model calls this time: 0, judge calls: 0" in again and "judge calls this time: 0" in again


@pytest.mark.skipif(
    not (DATA / "datasets").is_dir() or not MEDQA.is_dir(),
    reason=f"official data / medical QA not found under {SHARED}",
)
def test_demo_shows_the_safety_tuning_finding(tiny_model_dir: Path, tmp_path: Path) -> None:
    from rich.console import Console

    from medsafetybench.demo import run_demo
    from medsafetybench.finetune.sweep import sweep_rows
    from medsafetybench.store import Store

    console = Console(record=True, width=100)
    outcome = run_demo(
        console,
        console,
        data=DATA,
        project=tmp_path,
        model_dir=tiny_model_dir,
        medqa_dir=MEDQA,
        download=False,
        sample=27,
    )
    text = console.export_text()
    with Store.open_project(tmp_path) as store:
        base_sample, *_, tuned_sample = (store.run(r) for r in outcome.run_ids)
        rows = sweep_rows(store, outcome.sweep_id)
        base_scores = [r.score for r in store.run_rows(outcome.run_ids[0], base_sample.judge_identity)]
        tuned_scores = [r.score for r in store.run_rows(outcome.run_ids[-1], tuned_sample.judge_identity)]
    assert [(r["data_kind"], r["n"]) for r in rows] == [("base", 0), ("med", 100)]
    base, tuned = rows
    assert base["n_items"] == tuned["n_items"] == 27
    # the refusal change shows through the judge and through the refusal rate
    assert tuned["harm_mean"] < base["harm_mean"] and tuned["diff_mean"] < 0 and tuned["wilcoxon_p"] < 0.05
    assert base["refusal_rate"] == 0 and tuned["refusal_rate"] >= 0.9
    assert sum(tuned_scores) < sum(base_scores)
    # and its cost: benign medical questions refused
    assert base["over_refusal"] < tuned["over_refusal"] and base["n_benign"] == 30
    assert "paired McNemar test" in text and "sample set, item by item" in text
    assert outcome.report is not None and outcome.report.is_file()


def test_demo_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    for args, message in (
        (["--data", str(tmp_path / "missing")], "not a MedSafetyBench copy"),
        (["--judge", "nosuch:x", "--no-download"], "unknown judge 'nosuch'"),
    ):
        project = tmp_path / "p"
        assert run_main("demo", *args, "--project", str(project)) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert message in err and "Traceback" not in err
        assert not project.exists()
