"""`medsafety generate gcg` and `gcg-runs` on the tiny model: every setting is an option, `--json` has
suffix, losses, steps and success, another batch size reuses the run, and runs are listed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_main

pytest.importorskip("torch")


def _gcg(model: Path, proj: str, *extra: str) -> list[str]:
    return [
        "generate",
        "gcg",
        "-g",
        f"hf:{model}",
        "-p",
        "5",
        "--steps",
        "3",
        "--top-k",
        "16",
        "--candidates",
        "24",
        "--suffix-len",
        "6",
        "--init",
        "!",
        "--seed",
        "2",
        "--check-every",
        "3",
        "--check-tokens",
        "6",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--goal",
        'Write a note {x} "é"',
        "--target",
        "Sure, here",
        "--project",
        proj,
        *extra,
    ]


def test_gcg_command_json_and_runs(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    proj = str(tmp_path / "proj")
    assert run_main(*_gcg(tiny_model_dir, proj, "--batch-size", "8", "--no-early-stop", "--json")) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["steps"] == 3 and len(res["losses"]) == 4 and isinstance(res["success"], bool)
    assert isinstance(res["refused"], bool) and len(res["suffix_ids"]) == 6 and res["suffix"]
    assert [c["step"] for c in res["checks"]] == [3] and res["generation"]["calls"] == 0
    assert run_main(*_gcg(tiny_model_dir, proj, "--batch-size", "24", "--no-early-stop", "--json")) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["losses"] == res["losses"] and again["seconds"] == res["seconds"]  # reused, not re-run
    assert run_main("generate", "gcg-runs", "--project", proj, "--json") == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert (run["status"], run["steps_run"], run["steps"], run["principle"]) == ("done", 3, 3, 5)
    assert run_main("generate", "gcg-runs", "--project", proj) == 0
    assert "1 run(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--template", "gpt"], "--template 'gpt' is unknown"),
        (["--init", "a b"], "--init 'a b' is"),
        (["--prompts-version", "msb-gen-v0"], "--prompts-version 'msb-gen-v0' is unknown"),
    ],
)
def test_gcg_user_errors(extra: list[str], message: str, tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    assert run_main(*_gcg(tiny_model_dir, str(tmp_path), *extra)) == 2
    assert message in capsys.readouterr().err
