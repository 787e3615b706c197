"""`--max-cost` over real HTTP (the fake OpenAI server): a limit that stops a run mid-way (exit 5, what was
spent, how to resume), a re-run with a higher limit that makes only the missing calls, and the refusals
that start nothing (a limit below one call, an unknown price)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_main
from medsafetybench.store import Store

REPLY = "Sure, here is exactly how to do that, step by step."  # 11 words: the fake server counts 11 tokens


def complier(request: dict) -> str:
    return REPLY


def judge(request: dict) -> str:
    return "#reason: r\n#score: 5"


@pytest.fixture
def setup(tmp_path, fake_openai_factory, monkeypatch):
    monkeypatch.delenv("MEDSAFETY_PRICES", raising=False)
    model, jsrv = fake_openai_factory(complier), fake_openai_factory(judge)
    data = tmp_path / "requests.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "request": f"question {i}"}) + "\n" for i in range(6)))
    prices = tmp_path / "prices.toml"
    # $1 per output token of the model (prompt tokens free): a call costs at most 16 x $1 = $16 in flight
    # (max_new_tokens 16) and really $11 (11 completion tokens). The judge is priced at $0.
    prices.write_text(
        f'[openai."m@{model.base_url}"]\ninput = 0\noutput = 1000000\n\n'
        f'[openai."j@{jsrv.base_url}"]\ninput = 0\noutput = 0\n'
    )
    args = [
        "eval",
        "-m",
        f"openai:m@{model.base_url}",
        "-j",
        f"openai:j@{jsrv.base_url}",
        "--input",
        str(data),
        "--max-new-tokens",
        "16",
        "--project",
        str(tmp_path / "proj"),
        "--prices",
        str(prices),
    ]
    return model, jsrv, args, tmp_path / "proj"


def test_max_cost_stops_mid_run_and_a_rerun_resumes_with_only_the_missing_calls(setup, capsys) -> None:
    model, jsrv, args, project = setup
    # $50: 3 calls fit at $16 each ($48 reserved) -> $33 spent; then 1 more ($33 + 16 <= 50) -> $44;
    # then $44 + 16 > $50: the last 2 requests are not sent.
    assert run_main(*args, "--max-cost", "50") == 5
    out, err = capsys.readouterr()
    flat = " ".join(out.split())  # the line wraps at the console width
    assert "model: 6 requests, 4 answered, 2 failed" in flat and "2 of them held back by --max-cost" in flat
    assert "stopped at --max-cost $50.00: spent $44.00 this time (model $44.00, judge $0.00)" in err
    assert "2 model request(s) not sent" in err and "re-run the same command with a higher --max-cost" in err
    assert model.stats().total_calls == 4 and jsrv.stats().total_calls == 4
    with Store.open_project(project) as store:
        (info,) = store.runs()
        rows = store.run_rows(info.id)
        assert sum(r.response is not None for r in rows) == 4 and sum(r.judged for r in rows) == 4
    assert run_main(*args, "--max-cost", "100") == 0
    capsys.readouterr()
    assert model.stats().total_calls == 6 and jsrv.stats().total_calls == 6  # only the 2 missing ones
    with Store.open_project(project) as store:
        assert all(r.judged for r in store.run_rows(store.runs()[0].id))
    assert run_main(*args, "--max-cost", "1") == 0  # everything stored: nothing to pay, nothing refused
    assert model.stats().total_calls == 6


def test_max_cost_below_one_call_starts_nothing(setup, capsys) -> None:
    model, jsrv, args, project = setup
    assert run_main(*args, "--max-cost", "15") == 2
    err = capsys.readouterr().err.strip()
    assert "--max-cost 15 is below the cost of one model call" in err and len(err.splitlines()) == 1
    assert not project.exists() and model.stats().total_calls == 0 and jsrv.stats().total_calls == 0


def test_max_cost_refuses_an_unpriced_endpoint(setup, tmp_path, capsys, monkeypatch) -> None:
    model, jsrv, args, project = setup
    args = [
        a if not a.startswith("openai:m@") else a.replace("openai:m@http://127.0.0.1", "openai:m@http://localhost")
        for a in args
    ]  # localhost: a local endpoint, $0 -- allowed
    args[args.index("--prices") + 1] = str(_write(tmp_path, f'[openai."j@{jsrv.base_url}"]\ninput = 0\noutput = 0\n'))
    assert run_main(*args, "--max-cost", "1", "--dry-run") == 0
    assert "accepted" in capsys.readouterr().err
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # the key check comes first; nothing is sent
    unpriced = [a.replace(f"openai:j@{jsrv.base_url}", "openai:gpt-99") for a in args]
    assert run_main(*unpriced, "--max-cost", "1") == 2
    err = capsys.readouterr().err.strip()
    assert "the price of openai:gpt-99 is unknown" in err and len(err.splitlines()) == 1
    assert not project.exists()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "other-prices.toml"
    p.write_text(text)
    return p


def test_study_run_dry_run_and_a_stop_that_starts_no_further_model(
    setup, tmp_path, fake_openai_factory, capsys
) -> None:
    model, jsrv, args, project = setup
    second = fake_openai_factory(complier)
    prices = Path(args[args.index("--prices") + 1])
    prices.write_text(prices.read_text() + f'\n[openai."m2@{second.base_url}"]\ninput = 0\noutput = 1000000\n')
    study = tmp_path / "s.toml"
    study.write_text(f"""[study]
name = "s"
[items]
input = "{tmp_path / "requests.jsonl"}"
[settings]
max_new_tokens = 16
[[judges]]
name = "j"
spec = "openai:j@{jsrv.base_url}"
[[models]]
name = "one"
spec = "openai:m@{model.base_url}"
[[models]]
name = "two"
spec = "openai:m2@{second.base_url}"
""")
    common = ["--project", str(project), "--prices", str(prices)]
    assert run_main("study", "run", str(study), *common, "--dry-run", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    # 2 models x 6 calls at most 16 x $1 each; the judge is free
    assert [s["calls"] for s in doc["stages"]] == [6, 6, 6, 6] and doc["total"]["live_max"] == pytest.approx(192)
    assert not project.exists()
    assert run_main("study", "run", str(study), *common, "--max-cost", "50") == 5
    assert "stopped at --max-cost $50.00" in capsys.readouterr().err
    assert model.stats().total_calls == 4 and second.stats().total_calls == 0
