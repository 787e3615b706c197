"""medqa.tasks: the released files load with exact counts, prompts match lm-evaluation-harness, bad
rows name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.paths import SHARED
from medsafetybench.errors import UserError
from medsafetybench.medqa.tasks import (
    DATA_ENV,
    TASKS,
    load_task,
    medmcqa_prompt,
    medqa_prompt,
    mmlu_prompt,
    pubmedqa_prompt,
    resolve_tasks,
)

SHARED = SHARED / "data" / "medqa"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/medqa (released QA files) not present")


@needs_shared
@pytest.mark.parametrize("group,count", [("medqa", 1273), ("medmcqa", 4183), ("pubmedqa", 500), ("mmlu_medical", 1089)])
def test_released_files_exact_counts(group: str, count: int) -> None:
    qs = [q for t in resolve_tasks([group]) for q in load_task(t, SHARED)]
    assert len(qs) == count
    assert len({q.id for q in qs}) == count
    assert all(0 <= q.gold < len(q.choices) for q in qs)


@needs_shared
def test_mmlu_subject_counts_and_first_prompt() -> None:
    counts = {t.name: len(load_task(t, SHARED)) for t in resolve_tasks(["mmlu_medical"])}
    assert counts == {
        "mmlu_anatomy": 135,
        "mmlu_clinical_knowledge": 265,
        "mmlu_college_biology": 144,
        "mmlu_college_medicine": 173,
        "mmlu_medical_genetics": 100,
        "mmlu_professional_medicine": 272,
    }
    q = load_task(TASKS["mmlu_anatomy"], SHARED, limit=1)[0]
    assert q.prompt.startswith(
        "The following are multiple choice questions (with answers) about anatomy.\n\n"
        "A lesion causing compression of the facial nerve"
    )
    assert q.prompt.endswith(
        "\nD. paralysis of the facial muscles, loss of taste, lacrimation and decreased salivation.\nAnswer:"
    )
    assert q.gold == 0


@needs_shared
def test_medmcqa_cop_is_one_based_and_pubmedqa_uses_official_test_ids() -> None:
    q = load_task(TASKS["medmcqa"], SHARED, limit=1)[0]
    assert q.gold == 0 and q.id == "45258d3d-b974-44dd-a161-c3fccbdadd88"  # cop 1 -> opa
    pub = load_task(TASKS["pubmedqa"], SHARED)
    truth = json.loads((SHARED / "pubmedqa" / "test_ground_truth.json").read_text())
    assert [q.id for q in pub] == list(truth)
    assert [q.choices[q.gold] for q in pub] == list(truth.values())


def test_prompt_strings_match_the_harness() -> None:
    opts = ("w", "x", "y", "z")
    assert medqa_prompt("Q?", opts) == "Question: Q?\nA. w\nB. x\nC. y\nD. z\nAnswer:"
    assert medmcqa_prompt("Q?", opts) == "Question: Q?\nChoices:\nA. w\nB. x\nC. y\nD. z\nAnswer:"
    assert pubmedqa_prompt(["c1", "c2"], "Q?") == "Abstract: c1\nc2\nQuestion: Q?\nAnswer:"
    assert mmlu_prompt("clinical_knowledge", " Q? ", opts) == (
        "The following are multiple choice questions (with answers) about clinical knowledge.\n\n"
        "Q?\nA. w\nB. x\nC. y\nD. z\nAnswer:"
    )


def _write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


GOOD_MEDQA = json.dumps({"question": "Q", "options": {"A": "a", "B": "b", "C": "c", "D": "d"}, "answer_idx": "C"})


@pytest.mark.parametrize(
    "task,rel,text,line,what",
    [
        (
            "medqa",
            "medqa_usmle_4opt_test/phrases_no_exclude_test.jsonl",
            GOOD_MEDQA + "\n{broken\n",
            2,
            "not valid JSON",
        ),
        (
            "medqa",
            "medqa_usmle_4opt_test/phrases_no_exclude_test.jsonl",
            GOOD_MEDQA + "\n" + GOOD_MEDQA.replace('"C"}', '"E"}') + "\n",
            2,
            "answer_idx",
        ),
        (
            "medmcqa",
            "medmcqa_dev/dev.json",
            json.dumps({"question": "Q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 0}) + "\n",
            1,
            "cop",
        ),
        ("mmlu_anatomy", "mmlu_medical/anatomy_test.csv", "q,a,b,c,d,A\nq2,a,b,c,D\n", 2, "6 columns"),
        ("mmlu_anatomy", "mmlu_medical/anatomy_test.csv", 'q,a,b,c,d,A\n"multi\nline",a,b,c,d,Z\n', 3, "answer column"),
    ],
)
def test_malformed_rows_name_file_and_line(
    tmp_path: Path, task: str, rel: str, text: str, line: int, what: str
) -> None:
    path = _write(tmp_path, rel, text)
    with pytest.raises(UserError) as exc:
        load_task(TASKS[task], tmp_path)
    assert f"{path}:{line}:" in str(exc.value) and what in str(exc.value)


def test_pubmedqa_unknown_pmid_and_bad_answer(tmp_path: Path) -> None:
    _write(tmp_path, "pubmedqa/ori_pqal.json", json.dumps({"1": {"QUESTION": "q", "CONTEXTS": ["c"]}}))
    truth = _write(tmp_path, "pubmedqa/test_ground_truth.json", '{\n  "1": "yes",\n  "2": "no"\n}\n')
    with pytest.raises(UserError, match=rf"{truth}:3: PMID 2 is not in ori_pqal.json"):
        load_task(TASKS["pubmedqa"], tmp_path)
    truth.write_text('{\n  "1": "perhaps"\n}\n')
    with pytest.raises(UserError, match=r"test_ground_truth.json:2: PMID 1 has answer 'perhaps'"):
        load_task(TASKS["pubmedqa"], tmp_path)


def test_flat_layout_missing_files_and_unknown_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(
        tmp_path,
        "dev.json",
        json.dumps({"question": "Q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 4}) + "\n",
    )
    assert load_task(TASKS["medmcqa"], tmp_path)[0].gold == 3
    with pytest.raises(UserError, match="task medqa: 'medqa_usmle_4opt_test/phrases_no_exclude_test.jsonl' not found"):
        load_task(TASKS["medqa"], tmp_path)
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(UserError, match="pass --data DIR"):
        load_task(TASKS["medqa"], None)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert len(load_task(TASKS["medmcqa"], None)) == 1
    with pytest.raises(UserError, match="unknown medical QA task 'medqa5'"):
        resolve_tasks(["medqa5"])
    assert [t.name for t in resolve_tasks(["mmlu_medical", "mmlu_anatomy"])][0] == "mmlu_anatomy"
