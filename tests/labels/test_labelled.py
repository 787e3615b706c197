"""Labelled sets (HarmBench validation format and plain CSV/JSONL) and judging them through the store's
judgement cache, with an LLM judge on a real local HTTP server."""

import json
from pathlib import Path

import pytest

from helpers.paths import SHARED
from medsafetybench.errors import UserError
from medsafetybench.judging import load_judge
from medsafetybench.judging.base import JudgeCase
from medsafetybench.labels.labelled import judge_labelled, load_labelled
from medsafetybench.store import Store

HARMBENCH = SHARED / "data" / "judge-dev" / "harmbench_val" / "harmbench_val_flat.jsonl"


def judge_reply(request: dict) -> str:
    """A judge that reads the response: HARM -> 5, MAYBE -> 3, GARBLE -> no score, else 1."""
    prompt = request["messages"][-1]["content"]
    response = prompt.split('Model Response: "', 1)[1].split('"\n\n', 1)[0]
    if "GARBLE" in response:
        return "I would rather not say."
    score = 5 if "HARM" in response else 3 if "MAYBE" in response else 1
    return f"#reason: judged.\n#score: {score}"


def write_plain(tmp_path: Path) -> Path:
    path = tmp_path / "labels.jsonl"
    rows = [
        {"request": "r1", "response": "HARM here", "label": 1},
        {"request": "r2", "response": "I refuse", "label": "safe"},
        {"request": "r3", "response": "MAYBE", "label": "harmful", "policy": "general"},
        {"request": "r4", "response": "GARBLE", "label": False},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.skipif(not HARMBENCH.exists(), reason=f"HarmBench validation set not found at {HARMBENCH}")
def test_harmbench_format():
    cases = load_labelled(HARMBENCH)
    assert len(cases) == 602
    assert sum(c.label for c in cases) == 273  # human_majority == 1
    assert {c.case.policy for c in cases} == {"general"}
    # split on "\n" only: some generations hold U+2028, which str.splitlines() would split at
    raw = [json.loads(line) for line in HARMBENCH.read_text().split("\n") if line.strip()]
    with_context = next(i for i, r in enumerate(raw) if r["context"])
    assert cases[with_context].case.request.startswith(raw[with_context]["context"])
    assert cases[with_context].case.request.endswith(raw[with_context]["behavior"])
    assert cases[0].case.response == raw[0]["generation"] and cases[0].id == raw[0]["id"]
    no_behaviour = next(i for i, r in enumerate(raw) if not r["behavior"])
    assert cases[no_behaviour].case.request == raw[no_behaviour]["test_case"]
    assert load_labelled(HARMBENCH, policy="medical")[0].case.policy == "medical"


def test_plain_formats(tmp_path):
    cases = load_labelled(write_plain(tmp_path))
    assert [c.label for c in cases] == [True, False, True, False]
    assert [c.case.policy for c in cases] == ["medical", "medical", "general", "medical"]
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text('request,response,label\n"a, b","yes, it is",yes\nc,d,no\n')
    cases = load_labelled(csv_path)
    assert [(c.case.request, c.case.response, c.label) for c in cases] == [
        ("a, b", "yes, it is", True),
        ("c", "d", False),
    ]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ('{"request": "a", "response": "b", "label": "perhaps"}\n', ".jsonl", "label 'perhaps'"),
        ('{"request": "a", "response": "b"}\n', ".jsonl", "needs request, response and label"),
        ('{"request": "", "response": "b", "label": 1}\n', ".jsonl", "'request' is missing"),
        ("not json\n", ".jsonl", "line 1 is not valid JSON"),
        ('{"request": "a", "response": "b", "label": 1, "policy": "x"}\n', ".jsonl", "policy 'x'"),
        ("request,response,label\n", ".csv", "no rows"),
        ("x", ".txt", ".csv or .jsonl"),
    ],
)
def test_bad_files_are_user_errors(tmp_path, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        load_labelled(path)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_labelled(tmp_path / "nope.csv")


def test_judging_is_cached_in_the_store(tmp_path, fake_openai_factory):
    srv = fake_openai_factory(judge_reply)
    cases = load_labelled(write_plain(tmp_path))
    with Store.open_project(tmp_path / "proj") as store:
        first = judge_labelled(store, load_judge(f"openai:j@{srv.base_url}", max_attempts=1), cases)
        assert first.scores == [5, 1, 3, None] and first.judged == [True] * 4
        assert first.calls == 4 and first.failed == 0
        calls = srv.stats().total_calls
        judge = load_judge(f"openai:j@{srv.base_url}", max_attempts=1)
        # the same content keys as evaluation runs use
        keys = [c.case.cache_key(judge.identity) for c in cases]
        assert store.has_judgements(keys) == set(keys)
        assert keys[0] == JudgeCase("r1", "HARM here", "medical").cache_key(judge.identity)
        second = judge_labelled(store, judge, cases)
        assert second.calls == 0 and second.scores == first.scores
        assert srv.stats().total_calls == calls


def test_unreachable_judge_is_not_stored(tmp_path):
    cases = load_labelled(write_plain(tmp_path))[:2]
    judge = load_judge("openai:j@http://127.0.0.1:9/v1", max_attempts=1, timeout=2, max_retries=0)
    with Store.open_project(tmp_path / "proj") as store:
        # nothing listens there: the first round fails to connect, so the run stops with one line
        with pytest.raises(UserError, match=r"cannot connect to http://127\.0\.0\.1:9/v1"):
            judge_labelled(store, judge, cases)
        assert store.has_judgements(c.case.cache_key(judge.identity) for c in cases) == set()
