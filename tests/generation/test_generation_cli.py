"""`medsafety generate ...` end to end over the fake OpenAI server: prompt, filter, safe responses,
list, export; `--scorer none`; list states that agree with the counts; user mistakes give one line and
exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_main
from helpers.paths import REPO, SHARED
from medsafetybench.generation.candidates import CandidateStore
from medsafetybench.store import Store

DATA = SHARED / "data" / "med-safety-bench"


def responder(req: dict) -> str:
    text = req["messages"][-1]["content"]
    if "politely declines" in text or "politely decline to answer" in text:
        return "I'm sorry, but I cannot help with that because it would be unethical."
    if "On a scale from 0 to 10" in text or "Please provide a harmfulness score" in text:
        return "#score: 9"
    return (
        "\n".join(
            f"{i}. Request about topic {x}, written as a placeholder for the test" for i, x in enumerate("ABC", start=1)
        )
        + "\n4. Too short"
    )


def test_generate_pipeline(fake_openai_factory, tmp_path: Path, capsys, monkeypatch) -> None:
    if not (DATA / "datasets").is_dir():
        pytest.skip(f"shared benchmark data not found at {DATA}")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    srv = fake_openai_factory(responder)
    spec = f"openai:gen@{srv.base_url}"
    proj = str(tmp_path / "proj")
    assert run_main("generate", "prompt", "-g", spec, "-p", "3", "-k", "4", "--project", proj, "--json") == 0
    assert json.loads(capsys.readouterr().out)["added"] == 4
    assert (
        run_main(
            "generate", "filter", "--no-embeddings", "--scorer", spec, "--data", str(DATA), "--project", proj, "--json"
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert (res["kept"], res["dropped"]) == (3, 1)
    assert [r["reasons"] for r in res["results"]][3] == ["too short (2 words < 6)"]
    assert all(r["scores"]["harm"] == 9 for r in res["results"][:3])
    assert res["results"][0]["scores"]["harm_scorer"].endswith("|msb-gen-v2")
    assert run_main("generate", "list", "--project", proj) == 0
    listed = capsys.readouterr().out
    assert "dropped" in listed.splitlines()[-2] or "│ dropped" in listed  # the dropped row says so
    rows = [line for line in listed.splitlines() if "Too short" in line]
    assert rows and "dropped" in rows[0] and "pending" not in rows[0]
    assert run_main("generate", "safe-responses", "-g", spec, "--project", proj) == 0
    capsys.readouterr()
    assert run_main("generate", "export", "--out", str(tmp_path / "out"), "--project", proj) == 2
    assert "no accepted candidates" in capsys.readouterr().err
    with Store.open_project(proj) as store:
        cs = CandidateStore(store)
        for c in cs.list()[:2]:
            cs.decide(c.id, "accept")
    assert run_main("generate", "list", "--project", proj, "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["counts"] == {"pending": 1, "accepted": 2, "rejected": 0, "dropped": 1}
    assert run_main("generate", "export", "--out", str(tmp_path / "out"), "--project", proj) == 0
    assert (tmp_path / "out" / "med_safety_demonstrations_category_3.csv").is_file()
    assert len(json.loads((tmp_path / "out" / "alpaca.json").read_text())) == 2


def test_filter_scorer_none_skips_the_prescreen(fake_openai_factory, tmp_path: Path, capsys, monkeypatch) -> None:
    if not (DATA / "datasets").is_dir():
        pytest.skip(f"shared benchmark data not found at {DATA}")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    srv = fake_openai_factory(responder)
    proj = str(tmp_path / "proj")
    assert run_main("generate", "prompt", "-g", f"openai:gen@{srv.base_url}", "-p", "2", "--project", proj) == 0
    capsys.readouterr()
    calls = srv.stats().total_calls
    assert (
        run_main(
            "generate",
            "filter",
            "--scorer",
            "none",
            "--no-embeddings",
            "--data",
            str(DATA),
            "--project",
            proj,
            "--json",
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert (res["kept"], res["dropped"]) == (3, 1) and all("harm" not in r["scores"] for r in res["results"])
    assert srv.stats().total_calls == calls  # no scorer was asked
    assert run_main("generate", "list", "--status", "dropped", "--project", proj, "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["state"] for c in listed["candidates"]] == ["dropped"] and listed["counts"]["dropped"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "prefill", "-g", "openai:x", "-p", "1"], "needs a local model"),
        (
            ["generate", "prompt", "-g", "openai:x", "-p", "1", "--prompts-version", "v9"],
            "--prompts-version 'v9' is unknown",
        ),
        (["generate", "gcg", "-g", "openai:x", "-p", "1"], "needs a local model"),
        (["generate", "list", "--status", "maybe"], "--status 'maybe' is unknown"),
        (["generate", "filter", "--scorer", "none", "--prompts-version", "x"], "--prompts-version 'x' is unknown"),
    ],
)
def test_user_errors(args: list[str], message: str, tmp_path: Path, capsys) -> None:
    assert run_main(*args, "--project", str(tmp_path)) == 2
    assert message in capsys.readouterr().err


def test_openai_generators_close_their_sessions(fake_openai_factory, tmp_path: Path) -> None:
    """prompt, filter (with an HTTP scorer) and safe-responses close the HTTP session they open: no
    "Unclosed client session" and no ResourceWarning on stderr (issue 19, item 7)."""
    import os
    import subprocess
    import sys

    if not (DATA / "datasets").is_dir():
        pytest.skip(f"shared benchmark data not found at {DATA}")
    srv = fake_openai_factory(responder)
    spec = f"openai:gen@{srv.base_url}"
    src = str(REPO / "src")
    env = {**os.environ, "PYTHONPATH": src, "OPENAI_API_KEY": "test-key", "PYTHONWARNINGS": "always::ResourceWarning"}
    proj = str(tmp_path / "proj")
    for args in (
        ["prompt", "-g", spec, "-p", "3", "-k", "4"],
        ["filter", "--no-embeddings", "--scorer", spec, "--data", str(DATA)],
        ["safe-responses", "-g", spec],
    ):
        r = subprocess.run(
            [sys.executable, "-X", "dev", "-m", "medsafetybench.cli", "generate", *args, "--project", proj],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        assert "Unclosed" not in r.stderr and "ResourceWarning" not in r.stderr, (args[0], r.stderr)
