"""`medsafety medqa` through the CLI: tables fit 80 columns without cutting task names, show two-decimal
percentages with n and the protocol; `--export`; `medsafety medqa runs`; the batch size default agrees
with the docs; options of one protocol are refused under the other."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.cli import run_main
from helpers.medqa import ROWS, reply_for
from helpers.paths import REPO
from medsafetybench import cli_common

DOCS = REPO / "docs" / "medqa.md"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "qa"
    for subject in (
        "anatomy",
        "clinical_knowledge",
        "college_biology",
        "college_medicine",
        "medical_genetics",
        "professional_medicine",
    ):
        d = root / "mmlu_medical"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{subject}_test.csv").write_text("".join(",".join(r) + "\n" for r in ROWS))
    return root


@pytest.fixture
def narrow(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(cli_common.out, "_width", None)  # read COLUMNS now, as a fresh terminal would
    assert cli_common.out.width == 80


def test_tables_fit_80_columns(
    fake_openai_factory, data_dir: Path, tmp_path: Path, capsys, narrow, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    srv = fake_openai_factory(reply_for)
    args = ["--tasks", "mmlu_medical", "--medqa-dir", str(data_dir), "--project", str(tmp_path / "p")]
    assert run_main("medqa", "--model", f"openai:a@{srv.base_url}", *args) == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 80
    for name in ("mmlu_medical", "anatomy", "professional_medicine", "clinical_knowledge", "macro average"):
        assert re.search(rf"^\s*{name}\b", text, re.M), name  # whole names, never cut
    assert "protocol: harness, generation" in text
    assert re.search(r"professional_medicine\s+4\s+50\.00\s+0\.00-100\.00", text)  # 2-decimal percent, n, CI
    other = fake_openai_factory(lambda req: "A")
    assert run_main("medqa", "--compare", f"openai:a@{srv.base_url}", f"openai:b@{other.base_url}", *args) == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 80 and "professional_medicine" in text
    assert run_main("medqa", "runs", "--project", str(tmp_path / "p")) == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 80 and "harness," in text and "generation" in text


def test_export_runs_json_and_refusals(
    fake_openai_factory, data_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    srv = fake_openai_factory(reply_for)
    args = ["--tasks", "mmlu_anatomy", "--medqa-dir", str(data_dir), "--project", str(tmp_path / "p")]
    assert (
        run_main("medqa", "--model", f"openai:a@{srv.base_url}", "--export", str(tmp_path / "x.jsonl"), "--json", *args)
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "harness" and out["label"] == "harness, generation"
    recs = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and {r["task"] for r in recs} == {"mmlu_anatomy"}
    assert [r["valid"] for r in recs] == [True, True, True, False]  # the refusal is unreadable
    assert run_main("medqa", "runs", "--json", "--project", str(tmp_path / "p")) == 0
    [run] = json.loads(capsys.readouterr().out)
    assert run["protocol"] == "harness" and run["tasks"] == {"mmlu_anatomy": 4} and run["macro_acc"] == 0.5
    for bad in (
        ["--paper-shots", "3"],
        ["--protocol", "nope"],
        ["--shots", "2"],
        ["--export", str(tmp_path / "x.txt")],
        ["--protocol", "paper", "--paper-cot", "--paper-shots", "2"],
    ):
        assert run_main("medqa", "--model", f"openai:a@{srv.base_url}", *args, *bad) == 2, bad
        assert "error:" in capsys.readouterr().err
    assert run_main("medqa", "runs", "--project", str(tmp_path / "none")) == 2


def test_batch_size_default_matches_the_docs(capsys) -> None:
    assert run_main("medqa", "--help") == 0
    help_text = re.sub(r"\s+", " ", capsys.readouterr().out)
    default = re.search(r"--batch-size \S+.*?\[default: (\d+)", help_text).group(1)
    docs = DOCS.read_text()
    assert f"`--batch-size N` (hf:, default {default})" in docs
    assert all(m == default for m in re.findall(r"batch_size=(\d+)", docs))


def test_openai_medqa_closes_its_sessions(fake_openai_factory, data_dir: Path, tmp_path: Path) -> None:
    """Several tasks over HTTP (one event loop each) leave no "Unclosed client session" (issue 19, item 7)."""
    import os
    import subprocess
    import sys

    srv = fake_openai_factory(reply_for)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OPENAI_API_KEY": "k"}
    r = subprocess.run(
        [
            sys.executable,
            "-X",
            "dev",
            "-m",
            "medsafetybench.cli",
            "medqa",
            "--model",
            f"openai:a@{srv.base_url}",
            "--tasks",
            "mmlu_medical",
            "--medqa-dir",
            str(data_dir),
            "--project",
            str(tmp_path / "p"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "Unclosed" not in r.stderr and "ResourceWarning" not in r.stderr, r.stderr
