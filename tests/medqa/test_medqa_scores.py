"""medqa.scores: the protocol and its settings are part of every score's key. A store written by 0.1.0
(no-BOS log-likelihoods) migrates so its rows keep meaning what they meant: they answer `add_bos=False`
and never a BOS query; `medqa_runs` lists one result per model, protocol and settings; exports carry
the settings on every row and are written atomically."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from helpers.medqa import ROWS
from helpers.paths import FIXTURES, SHARED
from medsafetybench.errors import UserError
from medsafetybench.medqa import evaluate_medqa, export_records, medqa_runs
from medsafetybench.medqa.protocols import HarnessProtocol
from medsafetybench.medqa.scores import existing, harness_key, stored_rows
from medsafetybench.medqa.tasks import load_task, resolve_tasks
from medsafetybench.store import Store

FIXTURE = FIXTURES / "store_v1" / "medsafety.db"
DATA = SHARED / "data" / "medqa"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "qa" / "mmlu_medical"
    d.mkdir(parents=True)
    (d / "anatomy_test.csv").write_text("".join(",".join(r) + "\n" for r in ROWS))
    return d.parent


@pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} (the shared medical QA data) is absent")
def test_rows_of_release_0_1_answer_only_no_bos_queries(tmp_path: Path) -> None:
    path = tmp_path / "medsafety.db"
    shutil.copy(FIXTURE, path)
    with Store(path) as store:
        rows = store.conn.execute("SELECT key, model_identity, task, protocol, settings FROM medqa_scores").fetchall()
        assert len(rows) == 5 and {r[3:] for r in rows} == {("harness", '{"add_bos": false}')}
        identity, task = rows[0][1], rows[0][2]
        qs = load_task(resolve_tasks([task])[0], DATA, 5)  # the questions 0.1.0 scored (make_v1_store.py.txt)
        old_keys = {r[0] for r in rows}
        assert {harness_key(identity, task, q, "loglik", HarnessProtocol(add_bos=False)) for q in qs} == old_keys
        bos_keys = [harness_key(identity, task, q, "loglik", HarnessProtocol()) for q in qs]
        assert existing(store, bos_keys) == set()  # a BOS query finds nothing: it is computed anew
        [group] = stored_rows(store)
        assert group[1:] == ("harness", '{"add_bos": false}', "loglik")
        [run] = medqa_runs(store)
        assert run.label == "harness, no BOS" and run.tasks == {task: 5}


def test_bos_and_no_bos_are_kept_apart(tiny_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    spec = f"hf:{tiny_model_dir}"
    with Store(tmp_path / "s.db") as store:
        old = evaluate_medqa(store, spec, ["mmlu_anatomy"], data_dir, None, 3, add_bos=False)
        new = evaluate_medqa(store, spec, ["mmlu_anatomy"], data_dir, None, 3)  # default: BOS, as lm-eval
        assert (old.computed, new.computed) == (4, 4)  # the no-BOS rows did not stand in for BOS ones
        assert evaluate_medqa(store, spec, ["mmlu_anatomy"], data_dir, None, 3, add_bos=False).computed == 0
        assert evaluate_medqa(store, spec, ["mmlu_anatomy"], data_dir, None, 3, add_bos=True).computed == 0
        assert (old.label, new.label) == ("harness, no BOS", "harness")
        assert all(a.lls != b.lls for a, b in zip(old.records, new.records, strict=True))
        runs = medqa_runs(store)
        assert [(r.label, r.settings, r.tasks) for r in runs] == [
            ("harness, no BOS", {"add_bos": False}, {"mmlu_anatomy": 4}),
            ("harness", {"add_bos": True}, {"mmlu_anatomy": 4}),
        ]
        assert runs[1].accuracy["mmlu_anatomy"] == new.tasks[0].acc.value
        assert runs[1].macro_acc == new.macro


def test_export_jsonl_and_csv(tiny_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        res = evaluate_medqa(store, f"hf:{tiny_model_dir}", ["mmlu_anatomy"], data_dir, None, 3)
    assert export_records(res, tmp_path / "out.jsonl") == 4
    recs = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["question_id"] for r in recs] == [f"anatomy:{i}" for i in range(1, 5)]
    first = recs[0]
    assert first["protocol"] == "harness" and first["settings"] == {"add_bos": True} and first["mode"] == "loglik"
    assert first["gold"] == "A" and len(first["lls"]) == 4 and first["prediction"] in "ABCD"
    assert first["correct"] == (first["prediction"] == "A")
    assert sum(r["correct"] for r in recs) / 4 == res.tasks[0].acc.value
    assert export_records(res, tmp_path / "out.csv") == 4
    with open(tmp_path / "out.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert json.loads(rows[0]["settings"]) == {"add_bos": True} and len(json.loads(rows[0]["lls"])) == 4
    with pytest.raises(UserError, match="jsonl or .csv"):
        export_records(res, tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []  # no temporary files left
