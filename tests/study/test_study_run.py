"""Running studies and multi-model evaluations end to end over real HTTP (fake servers): runs named and
tagged, several judges, resume without calls, status from the store, JSON a script can trust, the CI
gate and the exit statuses, the report's comparable groups, and tables that fit 80 columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_main
from medsafetybench.store import Store


def complier(request: dict) -> str:
    return "Sure, here is exactly how to do that, step by step."


def refuser(request: dict) -> str:
    return "I cannot help with that request."


def rubric_judge(request: dict) -> str:
    response = request["messages"][-1]["content"].split('Model Response: "', 1)[1]
    return "#reason: r\n#score: " + ("1" if response.startswith("I cannot") else "5")


def lenient_judge(request: dict) -> str:
    return "#reason: lenient\n#score: 2"


def mute_judge(request: dict) -> str:
    return "I will not give a score."


@pytest.fixture
def servers(fake_openai_factory, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return {
        name: fake_openai_factory(fn)
        for name, fn in (
            ("complier", complier),
            ("refuser", refuser),
            ("rubric", rubric_judge),
            ("lenient", lenient_judge),
            ("mute", mute_judge),
        )
    }


def _study(tmp_path: Path, servers, judges=("rubric", "lenient"), extra: str = "") -> Path:
    text = f"""
[study]
name = "t"
[items]
split = "sample"
sample = 9
seed = 1
[settings]
max_new_tokens = 16
{extra}
"""
    for j in judges:
        text += f'\n[[judges]]\nname = "{j}"\nspec = "openai:{j}@{servers[j].base_url}"\n'
    text += f"""
[[models]]
name = "safe-model"
spec = "openai:refuser@{servers["refuser"].base_url}"
group = "medical"
[[models]]
name = "unsafe-model"
spec = "openai:complier@{servers["complier"].base_url}"
group = "general"
"""
    path = tmp_path / "t.toml"
    path.write_text(text)
    return path


def test_study_run_status_rerun_and_report(tmp_path, servers, capsys):
    path = _study(tmp_path, servers)
    project = str(tmp_path / "proj")
    assert run_main("study", "run", str(path), "--project", project, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["study"] == "t" and doc["exit_status"] == 0
    by_name = {r["name"]: r for r in doc["runs"]}
    assert by_name["safe-model"]["summary"]["overall"]["harmfulness"]["value"] == 1.0
    assert by_name["unsafe-model"]["summary"]["overall"]["harmfulness"]["value"] == 5.0
    lenient = next(k for k in by_name["unsafe-model"]["summaries"] if "lenient" in k)
    assert by_name["unsafe-model"]["summaries"][lenient]["overall"]["harmfulness"]["value"] == 2.0
    assert by_name["safe-model"]["summary"]["overall"]["refusal_rate"]["value"] == 1.0
    assert by_name["unsafe-model"]["summary"]["overall"]["refusal_rate"]["value"] == 0.0
    r = by_name["safe-model"]
    assert r["n_items"] == 9 and r["items"]["sample"] == 9 and r["items"]["seed"] == 1
    prov = r["provenance"]
    assert prov["medsafetybench"] and prov["data"]["kind"] == "bundled-sample" and len(prov["data"]["sha256"]) == 64
    assert prov["judge_prompt_version"] == "msb-judge-v1" and r["settings"]["generation"]["max_new_tokens"] == 16
    assert r["model_identity"].startswith("openai:refuser@") and r["items_digest"] and r["settings_digest"]
    calls = {k: s.stats().total_calls for k, s in servers.items()}
    assert calls["refuser"] == 9 and calls["rubric"] == 18 and calls["lenient"] == 18

    with Store.open_project(project) as store:
        runs = store.runs(tag="study:t")
        assert sorted(i.name for i in runs) == ["safe-model", "unsafe-model"]
        assert {t for i in runs for t in i.tags} == {"study:t", "group:medical", "group:general"}
        assert all(len(i.judges) == 2 for i in runs)

    assert run_main("study", "run", str(path), "--project", project) == 0  # resume: nothing to do
    assert {k: s.stats().total_calls for k, s in servers.items()} == calls
    text = capsys.readouterr()
    assert "Study t" in text.out and "safe-model" in text.out

    assert run_main("study", "status", str(path), "--project", project) == 0
    status = capsys.readouterr().out
    assert status.count("done") == 2 and "9/9" in status

    html = tmp_path / "r.html"
    assert (
        run_main(
            "study",
            "report",
            str(path),
            "--project",
            project,
            "--out",
            str(html),
            "--latex",
            str(tmp_path / "t.tex"),
            "--baseline",
            "unsafe-model",
        )
        == 0
    )
    page = html.read_text()
    assert "Paired comparison against unsafe-model" in page
    assert page.count('id="leaderboard-table') == 2  # one group per judge: never ranked together
    assert "Juries: several judges on the same responses" in page  # the two judges as a jury (labels/jury.py)
    tex = (tmp_path / "t.tex").read_text()
    assert "\\begin{tabular}" in tex and "safe-model" in tex and "unsafe-model" in tex


def test_status_before_running(tmp_path, servers, capsys):
    path = _study(tmp_path, servers)
    project = str(tmp_path / "proj")
    assert run_main("study", "run", str(path), "--only", "safe-model", "--project", project) == 0
    capsys.readouterr()
    assert run_main("study", "status", str(path), "--project", project, "--json") == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["safe-model"]["done"] and rows["safe-model"]["responses"] == 9
    assert not rows["unsafe-model"]["done"] and rows["unsafe-model"]["note"] == "not started"
    assert servers["complier"].stats().total_calls == 0


def test_gate_exit_status(tmp_path, servers, capsys):
    path = _study(tmp_path, servers, judges=("rubric",))
    project = str(tmp_path / "proj")
    assert run_main("study", "run", str(path), "--project", project, "--fail-above", "3") == 3
    err = capsys.readouterr().err
    assert "unsafe-model: mean harmfulness 5.000 is above --fail-above 3" in " ".join(err.split())
    assert (
        run_main("study", "run", str(path), "--project", project, "--only", "safe-model", "--fail-above", "share:0.5")
        == 0
    )
    assert run_main("study", "run", str(path), "--project", project, "--fail-above", "share:0.5") == 3
    assert run_main("study", "run", str(path), "--project", project, "--fail-above", "7") == 2
    assert run_main("study", "run", str(path), "--project", project, "--fail-above", "share:x") == 2


def test_all_unscored_is_its_own_exit_status(tmp_path, servers, capsys):
    project = str(tmp_path / "proj")
    code = run_main(
        "eval",
        "--model",
        f"openai:refuser@{servers['refuser'].base_url}",
        "--split",
        "sample",
        "--limit",
        "3",
        "--judge",
        f"openai:mute@{servers['mute'].base_url}",
        "--project",
        project,
        "--json",
    )
    assert code == 4
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_status"] == 4 and "no item could be scored" in doc["notes"][0]
    assert doc["summary"]["n_unscored"] == 3


def test_eval_several_models_names_sample_and_json(tmp_path, servers, capsys):
    project = str(tmp_path / "proj")
    args = [
        "eval",
        "--model",
        f"openai:refuser@{servers['refuser'].base_url}",
        "--name",
        "safe",
        "--model",
        f"openai:complier@{servers['complier'].base_url}",
        "--name",
        "unsafe",
        "--judge",
        f"openai:rubric@{servers['rubric'].base_url}",
        "--split",
        "sample",
        "--sample",
        "9",
        "--project",
        project,
    ]
    assert run_main(*args, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in doc["runs"]] == ["safe", "unsafe"]
    assert all(r["n_items"] == 9 for r in doc["runs"])
    assert servers["refuser"].stats().total_calls == 9 and servers["complier"].stats().total_calls == 9
    assert run_main("runs", "--project", project) == 0
    listing = capsys.readouterr().out
    assert "safe" in listing and "unsafe" in listing
    assert run_main("show", "unsafe", "--project", project) == 0  # a name finds its run
    assert "5.00" in capsys.readouterr().out
    assert run_main(*args[:4], "--name", "a", "--name", "b", "--project", project) == 2  # more names than models


def test_runs_tag_rename_and_forget(tmp_path, servers, capsys):
    project = str(tmp_path / "proj")
    assert (
        run_main(
            "eval",
            "--model",
            f"openai:refuser@{servers['refuser'].base_url}",
            "--split",
            "sample",
            "--limit",
            "2",
            "--judge",
            f"openai:rubric@{servers['rubric'].base_url}",
            "--project",
            project,
            "--json",
        )
        == 0
    )
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert run_main("runs", "--run", run_id[:6], "--add-tag", "baseline", "--rename", "ref", "--project", project) == 0
    capsys.readouterr()
    assert run_main("runs", "--tag", "baseline", "--project", project, "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "ref" and row["tags"] == ["baseline"]
    assert run_main("runs", "--rm", "--project", project) == 2  # --rm needs --run
    assert run_main("runs", "--run", "ref", "--rm", "--project", project) == 0
    capsys.readouterr()
    assert run_main("runs", "--project", project, "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    calls = servers["refuser"].stats().total_calls
    assert (
        run_main(
            "eval",
            "--model",
            f"openai:refuser@{servers['refuser'].base_url}",
            "--split",
            "sample",
            "--limit",
            "2",
            "--judge",
            f"openai:rubric@{servers['rubric'].base_url}",
            "--project",
            project,
        )
        == 0
    )
    assert servers["refuser"].stats().total_calls == calls  # forgotten run, cached responses


def test_tables_fit_80_columns(tmp_path, servers, capsys):
    path = _study(tmp_path, servers)
    project = str(tmp_path / "proj")
    assert run_main("study", "run", str(path), "--project", project) == 0
    for args in (("runs",), ("show", "safe-model"), ("study", "status", str(path))):
        capsys.readouterr()
        assert run_main(*args, "--project", project) == 0
        text = capsys.readouterr().out
        lines = text.splitlines()
        assert lines and max(len(line) for line in lines) <= 80, (args, max(lines, key=len))
        assert "\u2026" not in text  # nothing cut with an ellipsis
    assert "Harmfulness by principle" in text or "judged (rubric)" in text


def test_compare_uses_a_shared_judge_and_shows_refusal(tmp_path, servers, capsys):
    path = _study(tmp_path, servers)
    project = str(tmp_path / "proj")
    assert run_main("study", "run", str(path), "--project", project) == 0
    capsys.readouterr()
    assert run_main("compare", "safe-model", "unsafe-model", "--project", project, "--json") == 0
    c = json.loads(capsys.readouterr().out)
    assert "rubric" in c["judge_a"] and c["judge_a"] == c["judge_b"] and c["warnings"] == []
    assert c["overall"]["difference"]["value"] == 4.0 and c["refusal"]["difference"]["value"] == -1.0
    lenient = next(j for j in Store.open_project(project).run("safe-model").judges if "lenient" in j)
    assert run_main("compare", "safe-model", "unsafe-model", "--judge", lenient, "--project", project, "--json") == 0
    assert json.loads(capsys.readouterr().out)["overall"]["difference"]["value"] == 0.0
    assert run_main("compare", "safe-model", "unsafe-model", "--project", project) == 0
    text = capsys.readouterr().out
    assert "Refusal rate, B - A" in text and max(len(x) for x in text.splitlines()) <= 80
