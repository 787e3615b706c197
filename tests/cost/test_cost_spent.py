"""Spent cost per run (model and judge apart, from the usage the API returned) in `show`, `runs`,
`study status` and the HTML report, over real HTTP (fake server)."""

from __future__ import annotations

import json

import pytest

from helpers.cli import run_main
from medsafetybench.cost.pricing import load_prices
from medsafetybench.cost.spent import run_spent, run_tokens
from medsafetybench.store import Store

REPLY = "Sure, here is exactly how to do that, step by step."  # 11 words = 11 completion tokens


def complier(request: dict) -> str:
    return REPLY


def judge(request: dict) -> str:
    return "#reason: r\n#score: 5"  # 4 words = 4 completion tokens


@pytest.fixture
def study_run(tmp_path, fake_openai_factory, monkeypatch):
    model, jsrv = fake_openai_factory(complier), fake_openai_factory(judge)
    prices = tmp_path / "prices.toml"
    prices.write_text(
        f'[openai."m@{model.base_url}"]\ninput = 2000\noutput = 4000\nas_of = "2026-12"\n\n'
        f'[openai."j@{jsrv.base_url}"]\ninput = 1000\noutput = 3000\n'
    )
    monkeypatch.setenv("MEDSAFETY_PRICES", str(prices))  # display commands read the same table
    data = tmp_path / "requests.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "request": f"question {i}"}) + "\n" for i in range(3)))
    study = tmp_path / "s.toml"
    study.write_text(f"""[study]
name = "s"
[items]
input = "{data}"
[settings]
max_new_tokens = 16
system_prompt = "none"
[[judges]]
name = "j"
spec = "openai:j@{jsrv.base_url}"
[[models]]
name = "paid"
spec = "openai:m@{model.base_url}"
[[models]]
name = "free"
spec = "openai:m@http://localhost:{model.port}/v1"
""")
    project = tmp_path / "proj"
    assert run_main("study", "run", str(study), "--project", str(project)) == 0
    return study, project


def test_spent_from_stored_usage(study_run, capsys) -> None:
    study, project = study_run
    with Store.open_project(project) as store:
        paid = store.run("paid")
        tokens = run_tokens(store, paid.id)
        model, judge_ = run_spent(paid.model_identity, paid.judge_identity, tokens, load_prices())
    # model: 3 calls, prompt "question i" = 2 tokens each, 11 out: (6 x 2000 + 33 x 4000) / 1e6 = $0.144
    assert (tokens["response_prompt"], tokens["response_completion"]) == (6, 33)
    assert model.usd == pytest.approx(0.144) and model.fmt() == "$0.144"
    assert tokens["judge_completion"] == 12 and tokens["judge_prompt"] > 0
    assert judge_.usd == pytest.approx((tokens["judge_prompt"] * 1000 + 12 * 3000) / 1e6)
    capsys.readouterr()
    assert run_main("show", "paid", "--project", str(project)) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"spent model $0.144, judge {judge_.fmt()}" in text
    assert run_main("show", "free", "--project", str(project)) == 0
    assert "spent model local" in " ".join(capsys.readouterr().out.split())
    assert run_main("runs", "--project", str(project), "--json") == 0
    doc = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert doc["paid"]["spent"]["model"]["usd"] == pytest.approx(0.144)
    assert doc["free"]["spent"]["model"]["price"] == "local" and doc["free"]["spent"]["model"]["usd"] == 0.0


def test_spent_in_runs_and_study_status_at_80_columns(study_run, capsys, monkeypatch) -> None:
    study, project = study_run
    monkeypatch.setenv("COLUMNS", "80")
    for args in (("runs",), ("study", "status", str(study))):
        capsys.readouterr()
        assert run_main(*args, "--project", str(project)) == 0
        text = capsys.readouterr().out
        assert max(len(line) for line in text.splitlines()) <= 80
        assert "$0.144 / $" in text and "local / $" in text


def test_spent_in_the_html_report(study_run, tmp_path, capsys) -> None:
    study, project = study_run
    out = tmp_path / "r.html"
    assert run_main("study", "report", str(study), "--project", str(project), "--out", str(out)) == 0
    html = out.read_text()
    assert 'id="cost"' in html and "$0.144" in html and "local" in html
