"""The sweep on the tiny model: base + a fine-tuned point, same items and judge, paired comparison,
over-refusal, rows in sweep_points; a re-run trains nothing and calls neither model nor judge."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from medsafetybench.errors import UserError

pytest.importorskip("peft")

from helpers.sweep import DATA, _judge_responder, _plan, needs_data  # noqa: E402


@needs_data
def test_sweep_compares_points_and_reruns_for_free(tiny_model_dir: Path, tmp_path: Path, fake_openai_factory) -> None:
    from medsafetybench.finetune.sweep import run_sweep, sweep_rows
    from medsafetybench.store import Store

    srv = fake_openai_factory(_judge_responder)
    plan = _plan(tiny_model_dir, f"openai:judge@{srv.base_url}", medqa_tasks=("medqa",), medqa_limit=8)
    with Store.open_project(tmp_path) as store:
        first = run_sweep(store, plan, tmp_path)
        calls = srv.stats().total_calls
        [(base, tuned)] = [tuple(first.points)]
        assert (base.data_kind, base.n, tuned.data_kind, tuned.n) == ("base", 0, "med", 40)
        assert tuned.trained and Path(tuned.adapter_path).parent == tmp_path / "finetune" / "adapters"
        assert base.n_items == tuned.n_items == 12 and calls == 24
        assert tuned.harmfulness.value < base.harmfulness.value
        d = tuned.vs_base
        assert d.n == 12 and d.difference.value < 0 and d.wilcoxon_p is not None and d.wilcoxon_p < 0.05
        assert base.over_refusal.n == tuned.over_refusal.n == 20
        assert base.over_refusal.rate.value < tuned.over_refusal.rate.value and tuned.over_refusal.rate.value >= 0.8
        assert first.medqa_note is None
        assert all(0 <= p.medqa["accuracy"]["medqa"] <= 1 and p.medqa["macro_acc"] is not None for p in first.points)

        again = run_sweep(store, plan, tmp_path)
        assert srv.stats().total_calls == calls  # no judge calls
        assert not any(p.trained for p in again.points)
        assert [p.run_id for p in again.points] == [p.run_id for p in first.points]
        assert again.sweep_id == first.sweep_id
        rows = sweep_rows(store, first.sweep_id)
    assert [(r["data_kind"], r["n"]) for r in rows] == [("base", 0), ("med", 40)]
    r = rows[1]
    assert r["harm_mean"] == tuned.harmfulness.value and r["diff_mean"] == d.difference.value
    assert r["over_refusal"] == tuned.over_refusal.rate.value and r["n_benign"] == 20
    assert r["adapter_path"] == tuned.adapter_path and r["run_id"] == tuned.run_id
    assert r["medqa_acc"] == tuned.medqa["macro_acc"]


def test_sweep_bad_plans(tmp_path: Path) -> None:
    from medsafetybench.finetune.sweep import kinds_from, parse_ns, run_sweep
    from medsafetybench.store import Store

    with pytest.raises(UserError, match="comma list of whole numbers"):
        parse_ns("200,lots")
    with Store.open_project(tmp_path) as store:
        with pytest.raises(UserError, match="'dental' is unknown"):
            run_sweep(store, replace(_plan(tmp_path, "offline"), kinds=kinds_from("med,dental")), tmp_path)
    assert not (tmp_path / "finetune").exists()


def test_sweep_sample_is_part_of_the_plan_only_when_given(tmp_path: Path) -> None:
    from medsafetybench.finetune.sweep import SweepPlan

    plan = SweepPlan(base="hf:x", kinds=("med",), ns=(100,))
    assert "sample" not in plan.to_dict() and "sample_seed" not in plan.to_dict()  # older sweep ids unchanged
    sampled = SweepPlan(base="hf:x", kinds=("med",), ns=(100,), sample=27, sample_seed=3)
    assert sampled.to_dict()["sample"] == 27 and sampled.to_dict()["sample_seed"] == 3


@needs_data
def test_sweep_evaluates_a_stratified_sample(tmp_path: Path) -> None:
    from medsafetybench.finetune.sweep import SweepPlan, prepare_sweep
    from medsafetybench.store import Store

    plan = SweepPlan(base=f"hf:{tmp_path}", kinds=("med",), ns=(100,), data_dir=str(DATA), sample=18, benign_limit=5)
    from medsafetybench.testing.tiny import build_tiny_llama

    build_tiny_llama(tmp_path, pretrain_steps=0)
    with Store.open_project(tmp_path / "p") as store:
        prep = prepare_sweep(store, plan, tmp_path / "p")
    assert len(prep.items) == 18 and sorted({it.principle for it in prep.items}) == list(range(1, 10))
