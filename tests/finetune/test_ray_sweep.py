"""The fine-tuning sweep on a local Ray cluster (tiny model, one data kind, a few items): the same rows, numbers and
responses as the sweep in one process; a re-run trains and calls nothing; a failing point is retried, then
reported by name with exit status 1."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from helpers.cli import run_main
from helpers.sweep import DATA, MEDQA, _judge_responder, _plan, needs_data
from medsafetybench.store import Store

pytest.importorskip("ray", reason="the [ray] extra is not installed")
pytest.importorskip("peft")
pytestmark = needs_data

# run ids, paths and times differ between two projects; every number must not
PER_PROJECT = {"sweep_id", "model_spec", "adapter_path", "run_id", "benign_run_id", "updated_at"}


def _responses(store: Store, run_id: str) -> list[str | None]:
    return [r.response for r in store.run_rows(run_id)]


@pytest.fixture(scope="module")
def judge_server():
    from medsafetybench.testing import FakeOpenAIServer

    srv = FakeOpenAIServer(_judge_responder).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def ray_project(ray_cluster, tiny_model_dir, judge_server, tmp_path_factory):
    """One sweep made on the cluster (shared by the tests that only read it or re-run it)."""
    from medsafetybench.finetune.ray_sweep import run_sweep_ray

    project = tmp_path_factory.mktemp("ray-sweep")
    plan = _plan(tiny_model_dir, f"openai:judge@{judge_server.base_url}", medqa_tasks=("medqa",), medqa_limit=8)
    plan = replace(plan, settings=replace(plan.settings, epochs=3.0))  # as the CLI has it (3 and 3.0 key apart)
    with Store.open_project(project) as store:
        result = run_sweep_ray(store, plan, project)
    return project, plan, result


def test_sweep_on_ray_equals_the_sweep_in_process(ray_project, tmp_path):
    from medsafetybench.finetune.sweep import run_sweep, sweep_rows

    project, plan, on_ray = ray_project
    assert not on_ray.failures and [(p.data_kind, p.n) for p in on_ray.points] == [("base", 0), ("med", 40)]
    assert on_ray.points[1].trained and Path(on_ray.points[1].adapter_path).parent == project / "finetune" / "adapters"
    with Store.open_project(tmp_path) as store:
        local = run_sweep(store, plan, tmp_path)
        local_rows = sweep_rows(store, local.sweep_id)
        local_texts = [_responses(store, p.run_id) for p in local.points]
        local_benign = [_responses(store, p.over_refusal.run_id) for p in local.points]
    with Store.open_project(project) as store:
        ray_rows = sweep_rows(store, on_ray.sweep_id)
        ray_texts = [_responses(store, p.run_id) for p in on_ray.points]
        ray_benign = [_responses(store, p.over_refusal.run_id) for p in on_ray.points]
    # the adapter trained on a worker is the adapter trained here: the same weights, byte for byte, and the same
    # config (peft writes target_modules from a set, in an order that changes from one process to the next)
    ray_dir, local_dir = Path(on_ray.points[1].adapter_path), Path(local.points[1].adapter_path)
    for name in ("adapter_model.safetensors", "train_data.json"):
        assert (ray_dir / name).read_bytes() == (local_dir / name).read_bytes()
    configs = [json.loads((d / "adapter_config.json").read_text()) for d in (ray_dir, local_dir)]
    for c in configs:
        c["target_modules"] = sorted(c["target_modules"])
    assert configs[0] == configs[1]
    assert ray_texts == local_texts and ray_benign == local_benign
    assert len(ray_rows) == len(local_rows) == 2
    for mine, theirs in zip(ray_rows, local_rows, strict=True):
        assert {k: v for k, v in mine.items() if k not in PER_PROJECT} == {
            k: v for k, v in theirs.items() if k not in PER_PROJECT
        }
    assert ray_rows[1]["medqa_acc"] is not None and ray_rows[1]["diff_mean"] is not None


def test_cli_sweep_on_ray_reruns_for_free(ray_project, judge_server, tiny_model_dir, capsys):
    project, plan, first = ray_project
    calls = judge_server.stats().total_calls
    code = run_main(
        "sweep",
        "--base",
        f"hf:{tiny_model_dir}",
        "--train-data",
        "med",
        "--n",
        "40",
        "--judge",
        f"openai:judge@{judge_server.base_url}",
        "--limit",
        "12",
        "--max-new-tokens",
        "10",
        "--batch-size",
        "16",
        "--data",
        str(DATA),
        "--medqa-dir",
        str(MEDQA),
        "--benign-limit",
        "20",
        "--medqa",
        "medqa",
        "--medqa-limit",
        "8",
        "--lr",
        "1e-2",
        "--train-batch-size",
        "8",
        "--micro-batch-size",
        "8",
        "--warmup-steps",
        "0",
        "--epochs",
        "3",
        "--project",
        str(project),
        "--engine",
        "ray",
        "--json",
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["sweep_id"] == first.sweep_id and out["failed"] == []
    assert [p["run_id"] for p in out["points"]] == [p.run_id for p in first.points]
    assert not any(p["trained"] for p in out["points"])
    assert judge_server.stats().total_calls == calls  # nothing judged again


def test_a_failing_point_is_retried_then_reported(ray_cluster, tiny_model_dir, judge_server, tmp_path):
    from medsafetybench.finetune.ray_sweep import RaySweepOptions, run_sweep_ray
    from medsafetybench.testing.faults import FlakyTrain

    plan = replace(_plan(tiny_model_dir, f"openai:judge@{judge_server.base_url}"), ns=(16, 24), limit=4, benign_limit=4)
    flaky = FlakyTrain(str(tmp_path / "tries"), fails={16: 1, 24: 5})
    logs: list[str] = []
    with Store.open_project(tmp_path) as store:
        result = run_sweep_ray(store, plan, tmp_path, RaySweepOptions(max_retries=1, train=flaky), log=logs.append)
    assert flaky.tries(16) == 2 and flaky.tries(24) == 2  # one retry each, no more
    assert [(p.data_kind, p.n) for p in result.points] == [("base", 0), ("med", 16)]
    assert result.points[1].vs_base is not None and result.points[1].trained
    [failure] = result.failures
    assert (failure.data_kind, failure.n, failure.attempts) == ("med", 24, 2)
    assert "InjectedFault" in failure.error and "med n=24 failed after 2 tries" in str(failure)
    assert any("med n=16: try 1 of 2 failed" in line for line in logs)
    assert not (tmp_path / "finetune" / "adapters" / ".partial").exists()


def test_cli_names_a_failed_point_and_exits_1(ray_cluster, tiny_model_dir, judge_server, tmp_path, capsys):
    """A real failure on the worker (the base model has no module to adapt of that name, found only once the
    worker has loaded it): the base point is made, the fine-tuned one is reported by name, exit status 1."""
    code = run_main(
        "sweep",
        "--base",
        f"hf:{tiny_model_dir}",
        "--train-data",
        "med",
        "--n",
        "16",
        "--judge",
        f"openai:judge@{judge_server.base_url}",
        "--limit",
        "4",
        "--max-new-tokens",
        "6",
        "--data",
        str(DATA),
        "--target-modules",
        "qkv_fused",
        "--project",
        str(tmp_path),
        "--engine",
        "ray",
        "--json",
    )
    captured = capsys.readouterr()
    assert code == 1, captured.err
    err = " ".join(captured.err.split())
    assert "point failed: med n=16 failed after 1 try" in err and "--target-modules qkv_fused" in err
    assert [(p["data_kind"], p["n"]) for p in json.loads(captured.out)["points"]] == [("base", 0)]
