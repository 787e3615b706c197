"""`medsafety` starts light: importing the CLI (which registers every command) imports none of the heavy
extras, and `import medsafetybench` shows its public API to `dir()`. The wall time itself is measured in
bench/cli_startup.py (tests assert behaviour, not time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers.paths import REPO

SRC = str(REPO / "src")
HEAVY = ("inspect_ai", "torch", "transformers", "ray", "vllm", "onnxruntime", "peft", "datasets", "matplotlib")


def _modules_after(code: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    r = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


def test_the_cli_import_pulls_no_heavy_extra():
    loaded = _modules_after("import medsafetybench.cli")
    assert "medsafetybench.study.cli" in loaded  # every command module was imported (registered)
    assert sorted(m for m in HEAVY if m in loaded) == []


def test_help_lists_every_command_without_heavy_extras():
    env = {**os.environ, "PYTHONPATH": SRC}
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom medsafetybench.cli import main\ntry:\n"
            "    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{HEAVY!r}))",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    for name in (
        "eval",
        "runs",
        "show",
        "export",
        "study",
        "medqa",
        "generate",
        "label",
        "import-inspect",
        "report",
        "finetune",
    ):
        assert f" {name} " in r.stdout, name
    assert "LOADED []" in r.stdout


def test_packages_load_their_exports_on_first_use():
    loaded = _modules_after("import medsafetybench.medqa, medsafetybench.finetune, medsafetybench.inspect_eval")
    assert "medsafetybench.medqa.runner" not in loaded and "inspect_ai" not in loaded
    import medsafetybench.finetune as ft
    import medsafetybench.medqa as medqa

    assert "evaluate_medqa" in dir(medqa) and callable(medqa.evaluate_medqa)
    assert "LoraSettings" in dir(ft) and ft.LoraSettings is ft.train.LoraSettings


def test_the_public_api_is_discoverable():
    code = (
        "import medsafetybench as m\nnames = dir(m)\nassert 'Any' not in names, names\n"
        "missing = [n for n in m.__all__ if n not in names]\nassert not missing, missing\n"
        "assert callable(m.evaluate) and m.ItemSelection('sample').split == 'sample'\n"
        "assert m.load_items('sample')[0].split == 'sample' and m.__version__\n"
        "print('OK', sorted(set(m.__all__) & {'evaluate', 'run_study_file', 'load_items', 'Store'}))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "OK ['Store', 'evaluate', 'load_items', 'run_study_file']" in r.stdout
