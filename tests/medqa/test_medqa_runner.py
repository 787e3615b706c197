"""medqa.runner and medqa.cli: scores land in the store and are never computed twice; generation mode over
a real HTTP fake OpenAI server with invalid counting; McNemar; `medsafety medqa` tables, JSON and --compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.medqa import ROWS, reply_for
from medsafetybench.medqa import compare_results, evaluate_medqa, mcnemar
from medsafetybench.store import Store


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "qa" / "mmlu_medical"
    d.mkdir(parents=True)
    (d / "anatomy_test.csv").write_text("".join(",".join(r) + "\n" for r in ROWS))
    return d.parent


def test_generation_mode_over_http_counts_invalid_and_caches(
    fake_openai_factory, data_dir: Path, tmp_path: Path
) -> None:
    srv = fake_openai_factory(reply_for)
    spec = f"openai:fake@{srv.base_url}"
    with Store.open_project(tmp_path / "proj") as store:
        r = evaluate_medqa(store, spec, ["mmlu_anatomy"], data_dir, None, 4, api_key="k")
        (t,) = r.tasks
        assert (t.n, t.n_scored, t.n_invalid) == (4, 4, 1)
        assert t.acc.value == pytest.approx(0.5)  # A right, B right, b (gold C) wrong, refusal invalid = wrong
        assert t.acc_norm is None and r.mode == "generate" and r.computed == 4
        calls = srv.stats().total_calls
        again = evaluate_medqa(store, spec, ["mmlu_anatomy"], data_dir, None, 4, api_key="k")
        assert again.computed == 0 and srv.stats().total_calls == calls
        assert again.tasks[0].correct == t.correct
        n_rows = store.conn.execute("SELECT COUNT(*) FROM medqa_scores").fetchone()[0]
        assert n_rows == 4


def test_loglik_mode_stores_every_choice_and_resumes(tiny_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    spec = f"hf:{tiny_model_dir}"
    with Store.open_project(tmp_path / "proj") as store:
        first = evaluate_medqa(store, spec, ["mmlu_anatomy"], data_dir, 2, 2)
        assert first.computed == 2 and first.mode == "loglik"
        full = evaluate_medqa(store, spec, ["mmlu_anatomy"], data_dir, None, 3)
        assert full.computed == 2 and full.tasks[0].n_scored == 4  # the first two came from the store
        rows = store.conn.execute("SELECT task, question_id, prompt_version, lls FROM medqa_scores").fetchall()
        assert len(rows) == 4 and all(len(json.loads(r[3])) == 4 and r[2] == "lmeval-v1" for r in rows)
        assert full.groups[0].name == "mmlu_medical" and full.macro == full.groups[0].acc.value
        assert set(full.accuracy()) == {"mmlu_anatomy", "mmlu_medical"}


def test_mcnemar_exact_and_chi_square() -> None:
    assert mcnemar(0, 0) == 1.0
    assert mcnemar(0, 6) == pytest.approx(2 / 64)  # exact two-sided binomial
    assert mcnemar(3, 3) == 1.0
    pytest.importorskip("scipy")
    assert mcnemar(10, 30) == pytest.approx(0.002663, rel=1e-3)  # (|10-30|-1)^2/40 = 9.025 on 1 df


def test_compare_pairs_questions(fake_openai_factory, data_dir: Path, tmp_path: Path) -> None:
    a_srv = fake_openai_factory(lambda req: "A")
    b_srv = fake_openai_factory(reply_for)
    with Store.open_project(tmp_path / "proj") as store:
        a = evaluate_medqa(store, f"openai:a@{a_srv.base_url}", ["mmlu_anatomy"], data_dir, api_key="k")
        b = evaluate_medqa(store, f"openai:b@{b_srv.base_url}", ["mmlu_anatomy"], data_dir, api_key="k")
    c = compare_results(a, b)
    anatomy = c.tasks[0]
    assert (anatomy.n, anatomy.acc_a, anatomy.acc_b, anatomy.a_only, anatomy.b_only) == (4, 0.25, 0.5, 0, 1)
    assert anatomy.p_value == 1.0


def test_cli_json_table_and_compare(fake_openai_factory, data_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from medsafetybench.cli import main as cli_main

    def main(argv: list[str]) -> None:
        try:
            cli_main(argv)
        except SystemExit as exc:
            if exc.code:
                raise

    monkeypatch.setenv("OPENAI_API_KEY", "k")
    a_srv, b_srv = fake_openai_factory(lambda req: "A"), fake_openai_factory(reply_for)
    args = ["--tasks", "mmlu_anatomy", "--medqa-dir", str(data_dir), "--project", str(tmp_path / "p")]
    main(["medqa", "--model", f"openai:a@{a_srv.base_url}", "--json", *args])
    out = json.loads(capsys.readouterr().out)
    assert out["tasks"][0]["acc"]["value"] == 0.25 and out["macro_acc"] == 0.25
    main(["medqa", "--compare", f"openai:a@{a_srv.base_url}", f"openai:b@{b_srv.base_url}", *args])
    text = capsys.readouterr().out
    assert "McNemar" in text and "mmlu_medical" in text and "macro average" in text
    with pytest.raises(SystemExit) as exc:
        main(["medqa", "--model", "hf:/nonexistent/model", "--tasks", "medqa", "--medqa-dir", str(tmp_path / "none")])
    assert exc.value.code == 2
    assert "does not exist" in capsys.readouterr().err
