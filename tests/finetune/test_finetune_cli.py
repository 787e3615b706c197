"""`medsafety finetune` / `medsafety sweep` from the command line: clear one-line errors with exit 2 and
no output folder; a short fine-tune prints how to use the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_main
from helpers.paths import SHARED

DATA = SHARED / "data" / "med-safety-bench"
needs_data = pytest.mark.skipif(not (DATA / "datasets").is_dir(), reason=f"official data not found at {DATA}")


@needs_data
def test_cli_errors_are_one_line_and_leave_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from medsafetybench.data import load_official

    leak = tmp_path / "leak.jsonl"
    leak.write_text(
        "\n".join(
            json.dumps({"instruction": it.request, "output": "no"}) for it in load_official("eval", data_dir=DATA)[:4]
        )
    )
    out = tmp_path / "out"
    cases = [
        (["--base", f"hf:{tmp_path / 'missing'}", "--train-data", "med", "--n", "100"], "does not exist"),
        (["--base", f"hf:{tmp_path}", "--train-data", "dental", "--n", "100"], "--train-data 'dental' is unknown"),
        (["--base", f"hf:{tmp_path}", "--train-data", "med", "--n", "1000"], "larger than the 900"),
        (["--base", f"hf:{tmp_path}", "--data-file", str(leak)], "4 of 4 records are MedSafety-Eval requests"),
        (["--base", f"hf:{tmp_path}", "--data-file", str(tmp_path / "nope.json")], "file not found"),
        (["--base", f"hf:{tmp_path}", "--train-data", "med", "--n", "100", "--batch-size", "6"], "multiple of"),
    ]
    for args, message in cases:
        code = run_main("finetune", *args, "--out", str(out), "--data", str(DATA))
        err = capsys.readouterr().err
        assert code == 2 and message in " ".join(err.split()), err
        assert "Traceback" not in err and not out.exists() and not list(tmp_path.glob(".out*"))
    assert run_main("sweep", "--base", f"hf:{tmp_path}", "--train-data", "med", "--n", "1,x") == 2
    assert "comma list of whole numbers" in capsys.readouterr().err


@needs_data
def test_cli_finetune_prints_the_model_spec(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "ft"
    args = [
        "finetune",
        "--base",
        f"hf:{tiny_model_dir}",
        "--train-data",
        "med",
        "--n",
        "100",
        "--out",
        str(out),
        "--data",
        str(DATA),
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--micro-batch-size",
        "8",
        "--lr",
        "1e-3",
    ]
    assert run_main(*args) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"use it as: hf:{tiny_model_dir.resolve()}+{out}" in text and "2 steps" in text
    assert run_main(*args) == 2 and "not empty" in capsys.readouterr().err
    assert run_main(*args, "--resume", "--json") == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2


@pytest.mark.parametrize("command", ["finetune", "sweep"])
def test_non_hf_base_is_refused_before_any_download(command: str, tmp_path: Path, capsys, monkeypatch) -> None:
    """`--base openai:...` says the base must be hf:, instead of failing in the data download."""
    monkeypatch.delenv("MEDSAFETYBENCH_DATA", raising=False)
    monkeypatch.setenv("MEDSAFETYBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MEDSAFETYBENCH_DATA_URL", "http://127.0.0.1:9/unreachable")
    extra = ["--out", str(tmp_path / "o")] if command == "finetune" else ["--project", str(tmp_path / "p")]
    assert run_main(command, "--base", "openai:gpt-4o-mini", "--train-data", "med", "--n", "100", *extra) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "fine-tuning needs a local transformers model, hf:PATH" in err and "download" not in err.lower()
    assert not (tmp_path / "cache").exists()


def test_the_old_spellings_are_gone(tmp_path: Path, capsys) -> None:
    """--data names the official release in every command, --train-data the training kind; the aliases of
    0.1.0 (`--data-dir`, `medqa --data`) were removed in 0.2.0: a clear usage error, no traceback."""
    assert run_main("medqa", "--model", "hf:/nonexistent/model", "--tasks", "medqa", "--data", str(tmp_path)) == 2
    assert "No such option: --data" in " ".join(capsys.readouterr().err.split())
    assert run_main("finetune", "--base", "hf:/x", "--train-data", "med", "--data-dir", str(tmp_path)) == 2
    assert "No such option: --data-dir" in " ".join(capsys.readouterr().err.split())
