"""The default offline judge as the protocol chose it (docs/judges.md): `offline` is v3 under v3's own
identity, the retired v2 is refused by every spec string in one line, and a store it judged reads the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medsafetybench.cli import main
from medsafetybench.errors import UserError
from medsafetybench.evaluation.pipeline import summarise_run
from medsafetybench.judging import judge_names, load_judge, parse_judge_spec, validate_judge_spec
from medsafetybench.judging.offline.v3 import OfflineJudgeV3
from medsafetybench.store import Store

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "store_offline_v2"
V2_IDENTITY = "offline:minilm-ce-v2-ccc324ee"


def _cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_offline_is_v3_under_its_own_identity() -> None:
    judge = load_judge("offline")
    assert isinstance(judge, OfflineJudgeV3)
    assert judge.identity == load_judge("offline-v3").identity and judge.identity.startswith("offline:minilm-mlp-v3-")
    assert judge.identity != load_judge("offline-v1").identity  # runs stored under the old default keep theirs


def test_the_retired_v2_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for call in (parse_judge_spec, validate_judge_spec, load_judge):
        with pytest.raises(UserError, match=r"^judge 'offline-v2' is retired .*use --judge offline"):
            call("offline-v2")
    assert "offline-v2" not in judge_names() and "offline-v3" in judge_names()
    project = tmp_path / "p"
    assert (
        _cli(
            "eval",
            "--model",
            "openai:m@http://127.0.0.1:9/v1",
            "--judge",
            "offline-v2",
            "--split",
            "sample",
            "--project",
            str(project),
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "offline-v2" in err and "retired" in err and "Traceback" not in err
    assert not project.exists()  # refused before anything was created


def test_its_class_still_loads_when_asked_for() -> None:
    assert load_judge("offline-v2", allow_retired=True).identity == V2_IDENTITY


def test_a_store_judged_by_the_retired_judge_reads_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run judged by offline-v2 and offline-v1 before v2 was retired (fixtures/store_offline_v2/make_store.py.txt)."""
    project = tmp_path / "p"
    project.mkdir()
    shutil.copy(FIXTURE / "medsafety.db", project / "medsafety.db")
    want = json.loads((FIXTURE / "summaries.json").read_text())
    with Store.open_project(project) as store:
        infos = {i.id: i for i in store.runs()}
        assert set(infos) == set(want)
        for run_id, w in want.items():
            assert list(infos[run_id].judges) == w["judges"] and V2_IDENTITY in w["judges"]
            for judge, summary in w["summaries"].items():
                got = summarise_run(store, run_id, judge_identity=judge).to_dict()
                for key in ("overall", "by_principle", "by_source", "score_counts", "n_items", "n_unscored"):
                    assert json.loads(json.dumps(got[key])) == summary[key], (judge, key)
    (run_id,) = want
    assert _cli("show", run_id, "--judge", V2_IDENTITY, "--project", str(project), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert list(shown["summaries"]) == [V2_IDENTITY]
    assert shown["summaries"][V2_IDENTITY]["overall"] == want[run_id]["summaries"][V2_IDENTITY]["overall"]
