"""MedSafetyBench as an inspect_ai task, offline: inspect's own providers (openai-compatible over real HTTP
to the fake server, and `hf` on the tiny model), our judges in inspect's scorer, scores identical to our
CLI's on the same responses, logs round-tripping through import and export, and bad logs as one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

inspect_ai = pytest.importorskip("inspect_ai", reason="the [inspect] extra is not installed")

from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai.log import read_eval_log  # noqa: E402

from helpers.cli import run_main  # noqa: E402
from medsafetybench.evaluation.pipeline import summarise_run  # noqa: E402
from medsafetybench.inspect_eval import export_inspect_log, medsafety  # noqa: E402
from medsafetybench.inspect_eval.scorer import SCORER_NAME  # noqa: E402
from medsafetybench.store import Store  # noqa: E402
from medsafetybench.testing.fake_openai import FakeOpenAIServer  # noqa: E402


def model_reply(request: dict) -> str:
    text = request["messages"][-1]["content"]
    return "I cannot help with that request." if len(text) % 3 == 0 else f"Sure, here is how: {text[:60]}"


def judge_reply(request: dict) -> str:
    prompt = request["messages"][-1]["content"]
    if len(prompt) % 4 == 0:
        return "I decline to rate."  # no score: unscored, never 1 or 5
    return "#reason: r\n#score: " + ("1" if 'Model Response: "I cannot' in prompt else "4")


@pytest.fixture
def servers(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeOpenAIServer(model_reply) as m, FakeOpenAIServer(judge_reply) as j:
        yield m, j


def _inspect(task, model_url: str, tmp_path: Path):
    (log,) = inspect_eval(
        task,
        model="openai/fake-model",
        model_base_url=model_url,
        display="none",
        log_dir=str(tmp_path / "logs"),
        model_args={"responses_api": False},
    )
    assert log.status == "success", log.error
    return log


def test_inspect_scores_equal_our_cli_scores(tmp_path, servers, capsys):
    """The same responses judged by the inspect scorer and by `medsafety eval` get identical scores, with the
    LLM judge over HTTP and with the offline judge."""
    model_srv, judge_srv = servers
    for judge in (f"openai:j@{judge_srv.base_url}", "offline"):
        log = _inspect(medsafety(split="sample", judge=judge, max_tokens=64), model_srv.base_url, tmp_path)
        project = tmp_path / f"proj-{judge[:4]}"
        assert run_main(
            "eval",
            "--model",
            f"openai:fake-model@{model_srv.base_url}",
            "--judge",
            judge,
            "--split",
            "sample",
            "--max-new-tokens",
            "64",
            "--project",
            str(project),
            "--json",
        ) in (0, 4)
        run_id = json.loads(capsys.readouterr().out)["run_id"]
        with Store.open_project(project) as store:
            ours = {r.item_id: (r.response, r.score) for r in store.run_rows(run_id)}
        theirs = {}
        for s in log.samples:
            score = s.scores[SCORER_NAME]
            v = score.value["harmfulness"] if isinstance(score.value, dict) else None
            theirs[str(s.id)] = (s.output.completion, v)
        assert theirs == ours
        if judge != "offline":
            assert sum(v is None for _, v in ours.values()) > 0  # some unscored, unscored in both
        metrics = {k: m.value for k, m in log.results.scores[0].metrics.items()}
        scored = [v for _, v in ours.values() if v is not None]
        assert metrics["mean"] == pytest.approx(sum(scored) / len(scored))


def test_log_round_trips_through_import_and_export(tmp_path, servers, capsys):
    model_srv, judge_srv = servers
    log = _inspect(
        medsafety(split="sample", sample=12, judge=f"openai:j@{judge_srv.base_url}", max_tokens=32),
        model_srv.base_url,
        tmp_path,
    )
    project = tmp_path / "proj"
    assert run_main("import-inspect", log.location, "--name", "from-inspect", "--project", str(project)) == 0
    assert "12 items, 12 new responses, 12 new judgements" in " ".join(capsys.readouterr().out.split())
    with Store.open_project(project) as store:
        info = store.run("from-inspect")
        assert (
            info.model_identity == "inspect:openai/fake-model" and info.settings["generation"]["max_new_tokens"] == 32
        )
        summary = summarise_run(store, info.id)
        exported = export_inspect_log(store, info.id, tmp_path / "out" / "exported.eval")
    again = read_eval_log(str(exported))
    a = {str(s.id): (s.input, s.output.completion, _v(s)) for s in log.samples}
    b = {str(s.id): (s.input, s.output.completion, _v(s)) for s in again.samples}
    assert a == b
    assert {str(s.id): s.metadata["principle"] for s in log.samples} == {
        str(s.id): s.metadata["principle"] for s in again.samples
    }
    # importing the exported log again finds the same run and adds nothing
    assert run_main("import-inspect", str(exported), "--project", str(project)) == 0
    assert f"run {info.id}" in " ".join(capsys.readouterr().out.split())
    with Store.open_project(project) as store:
        assert len(store.runs()) == 1 and summarise_run(store, info.id).to_dict() == summary.to_dict()
    # and into a fresh store: the same run id, the same summary
    fresh = tmp_path / "fresh"
    assert run_main("import-inspect", str(exported), "--project", str(fresh)) == 0
    with Store.open_project(fresh) as store:
        assert store.run(info.id).id == info.id
        assert summarise_run(store, info.id).to_dict() == summary.to_dict()


def _v(sample):
    score = sample.scores[SCORER_NAME]
    return score.value["harmfulness"] if isinstance(score.value, dict) else None


def test_one_of_our_runs_exports_to_inspect_and_back(tmp_path, servers, capsys):
    model_srv, judge_srv = servers
    project = tmp_path / "proj"
    assert run_main(
        "eval",
        "--model",
        f"openai:fake-model@{model_srv.base_url}",
        "--judge",
        f"openai:j@{judge_srv.base_url}",
        "--split",
        "sample",
        "--sample",
        "9",
        "--project",
        str(project),
        "--json",
    ) in (0, 4)
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    out = tmp_path / "run.eval"
    assert run_main("export-inspect", run_id, "--out", str(out), "--project", str(project)) == 0
    fresh = tmp_path / "fresh"
    assert run_main("import-inspect", str(out), "--project", str(fresh)) == 0
    with Store.open_project(project) as a, Store.open_project(fresh) as b:
        assert b.run(run_id).model_identity == a.run(run_id).model_identity
        assert summarise_run(a, run_id).to_dict() == summarise_run(b, run_id).to_dict()


@pytest.mark.slow
def test_hf_provider_on_the_tiny_model(tmp_path, tiny_model_dir):
    (log,) = inspect_eval(
        medsafety(split="sample", sample=4, judge="offline", max_tokens=8),
        model="hf/tiny",
        model_args={"model_path": str(tiny_model_dir), "device": "cpu", "do_sample": False},
        display="none",
        log_dir=str(tmp_path / "logs"),
    )
    assert log.status == "success", log.error
    assert len(log.samples) == 4 and all(SCORER_NAME in s.scores for s in log.samples)
    assert all(isinstance(s.output.completion, str) for s in log.samples)


def test_bad_logs_are_one_line_errors(tmp_path, capsys):
    project = tmp_path / "proj"
    garbage = tmp_path / "garbage.eval"
    garbage.write_bytes(b"not a zip file at all")
    cases = [(tmp_path / "missing.eval", "no such inspect log file"), (garbage, "not a readable inspect log")]
    for path, message in cases:
        assert run_main("import-inspect", str(path), "--project", str(project)) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not project.exists()  # nothing written for an unreadable file


def test_a_log_of_another_task_is_refused(tmp_path, servers, capsys):
    from inspect_ai import Task
    from inspect_ai.dataset import Sample
    from inspect_ai.solver import generate

    model_srv, _ = servers
    (log,) = inspect_eval(
        Task(dataset=[Sample(input="hello", target="x")], solver=generate()),
        model="openai/fake-model",
        model_base_url=model_srv.base_url,
        display="none",
        log_dir=str(tmp_path / "logs"),
        model_args={"responses_api": False},
    )
    project = tmp_path / "proj"
    assert run_main("import-inspect", log.location, "--project", str(project)) == 2
    assert "has no medsafetybench metadata" in capsys.readouterr().err
    with Store.open_project(project) as store:
        assert store.runs() == []  # nothing half-written


def test_inspect_cli_finds_the_task_by_name(tmp_path, servers):
    model_srv, judge_srv = servers
    inspect = shutil.which("inspect", path=str(Path(sys.executable).parent))
    if inspect is None:
        pytest.skip("the inspect command is not installed beside this interpreter")
    r = subprocess.run(
        [
            inspect,
            "eval",
            "medsafetybench/medsafety",
            "--model",
            "openai/fake-model",
            "--model-base-url",
            model_srv.base_url,
            "-M",
            "responses_api=false",
            "-T",
            "split=sample",
            "-T",
            "sample=3",
            "-T",
            "judge=inspect:openai/j",  # its arguments, as a user types them:
            "-T",
            f"judge_args={{base_url: {judge_srv.base_url}, responses_api: false}}",
            "--log-dir",
            str(tmp_path / "logs"),
            "--display",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "OPENAI_API_KEY": "sk-test"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (path,) = (tmp_path / "logs").glob("*.eval")
    log = read_eval_log(str(path))
    assert log.status == "success" and len(log.samples) == 3
    assert judge_srv.stats().by_outcome["ok"] >= 3  # the judge's own server, over chat completions


def test_an_inspect_judge_on_an_openai_compatible_server_gets_its_arguments(tmp_path, servers):
    """`-T judge=inspect:openai/j` with `judge_args` (base URL, `responses_api: false`): the judge's model
    reaches an OpenAI-compatible server that is not OpenAI through inspect's provider, and scores."""
    model_srv, judge_srv = servers
    task = medsafety(
        split="sample",
        sample=4,
        judge="inspect:openai/j",
        judge_args={"base_url": judge_srv.base_url, "responses_api": False},
    )
    log = _inspect(task, model_srv.base_url, tmp_path)
    values = [s.scores[SCORER_NAME].value for s in log.samples]
    assert any(isinstance(v, dict) and v["harmfulness"] in (1, 4) for v in values)
    assert judge_srv.stats().by_outcome["ok"] >= 4
    meta = log.samples[0].scores[SCORER_NAME].metadata
    assert meta["judge"] == f"llm:inspect:openai/j@{judge_srv.base_url}|msb-judge-v1"  # the server is in it


def test_a_task_whose_judge_never_answers_ends_as_an_error(tmp_path, servers):
    """Without `responses_api: false` inspect's openai provider asks /v1/responses, which this server does
    not serve (HTTP 404): every judgement fails, and the task must not end `success` with NaN scores."""
    model_srv, judge_srv = servers
    task = medsafety(split="sample", sample=3, judge="inspect:openai/j", judge_args={"base_url": judge_srv.base_url})
    (log,) = inspect_eval(
        task,
        model="openai/fake-model",
        model_base_url=model_srv.base_url,
        display="none",
        log_dir=str(tmp_path / "logs"),
        model_args={"responses_api": False},
    )
    assert log.status == "error"
    assert "judge" in str(log.error.message) and "404" in str(log.error.message)


def test_judge_args_are_parsed_from_the_command_line_form() -> None:
    from medsafetybench.inspect_eval.scorer import parse_judge_args

    assert parse_judge_args('{"base_url": "http://h/v1", "responses_api": false}') == {
        "base_url": "http://h/v1",
        "responses_api": False,
    }
    assert parse_judge_args("base_url=http://h/v1,responses_api=false") == {
        "base_url": "http://h/v1",
        "responses_api": False,
    }
    assert parse_judge_args(["base_url=http://h/v1", "responses_api=false"]) == {  # `-T a=1,b=2` splits
        "base_url": "http://h/v1",
        "responses_api": False,
    }
    assert parse_judge_args(None) == {}
