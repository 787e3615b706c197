"""The offline demo: the whole loop on the tiny model, stored, and free to re-run."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import run_main


def test_demo_runs_the_loop_then_reuses_everything(tiny_model_dir: Path, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.delenv("MEDSAFETYBENCH_DATA", raising=False)
    args = ("demo", "--model-dir", str(tiny_model_dir), "--project", str(tmp_path), "--max-new-tokens", "8")
    assert run_main(*args) == 0
    first = capsys.readouterr().out
    assert "bundled sample set" in first and "harmfulness" in first
    assert "model calls this time: 25, judge calls: 25" in first
    assert (tmp_path / "medsafety.db").is_file()
    assert run_main(*args) == 0
    assert "model calls this time: 0, judge calls: 0" in capsys.readouterr().out
