"""`--dry-run`: calls, tokens and cost against a hand-computed example; nothing called or created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_main
from helpers.paths import FIXTURES
from medsafetybench.judging.base import JudgeCase, Judgement
from medsafetybench.judging.prompt import build_judge_prompt
from medsafetybench.models.base import ChatRequest, Completion, GenerationConfig, Usage
from medsafetybench.store import Store

REQUESTS = {"a": "x" * 40, "b": "y" * 80, "c": "z" * 120}
MODEL = "openai:gpt-4o-mini"  # $0.15 in / $0.60 out per 1M tokens, batch x0.5
JUDGE = "openai:gpt-3.5-turbo-0125"  # $0.50 in / $1.50 out per 1M tokens, batch x0.5
JUDGE_IDENTITY = "llm:openai:gpt-3.5-turbo-0125|msb-judge-v1"


@pytest.fixture
def example(tmp_path, monkeypatch) -> tuple[Path, Path]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a dry run needs no key
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("MEDSAFETY_PRICES", raising=False)
    data = tmp_path / "requests.jsonl"
    data.write_text("".join(json.dumps({"id": k, "request": v}) + "\n" for k, v in REQUESTS.items()))
    return data, tmp_path / "proj"


def _args(data: Path, project: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "-m",
        MODEL,
        "-j",
        JUDGE,
        "--input",
        str(data),
        "--system-prompt",
        "none",
        "--max-new-tokens",
        "100",
        "--project",
        str(project),
        "--dry-run",
        *extra,
    ]


def test_dry_run_on_an_empty_project_creates_nothing(example, capsys) -> None:
    data, project = example
    assert run_main(*_args(data, project, "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert not project.exists()
    model, judge = doc["stages"]
    # model: one user message each, ceil(chars/4) + 4: 14 + 24 + 34 = 72 prompt tokens; 3 x 100 out at most
    assert (model["needed"], model["stored"], model["calls"], model["prompt_tokens"]) == (3, 0, 3, 72)
    assert model["cost_live_max"] == pytest.approx((72 * 0.15 + 300 * 0.60) / 1e6)  # $0.0001908
    assert model["output_tokens_typical_per_call"] is None  # no past runs: the typical figure is the ceiling
    assert model["cost_live_typical"] == pytest.approx(model["cost_live_max"])
    assert judge["calls"] == 3 and judge["output_tokens_max_per_call"] == 512
    assert doc["total"]["batch_max"] == pytest.approx(doc["total"]["live_max"] / 2)


def test_dry_run_figures_match_a_hand_computed_example(example, capsys) -> None:
    data, project = example
    # What the store already holds: item a answered (50 completion tokens) and judged (20 completion tokens).
    config = GenerationConfig(max_new_tokens=100)
    with Store.open_project(project) as store:
        req = ChatRequest.simple(REQUESTS["a"], system=None, config=config)
        store.put_response(req.cache_key(MODEL), MODEL, req, Completion("no.", Usage(14, 50)))
        key = JudgeCase(REQUESTS["a"], "no.", "medical").cache_key(JUDGE_IDENTITY)
        store.put_judgement(key, JUDGE_IDENTITY, Judgement(1, reason="r", raw="#score: 1", usage=Usage(1300, 20)))
    before = (project / "medsafety.db").stat().st_mtime_ns
    assert run_main(*_args(data, project, "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    model, judge = doc["stages"]
    # model: b and c to call: prompt 24 + 34 = 58; out at most 2 x 100 = 200, typically 2 x 50 = 100
    assert (model["stored"], model["calls"], model["prompt_tokens"]) == (1, 2, 58)
    assert (model["output_tokens_typical_per_call"], model["typical_from"]) == (50.0, 1)
    assert model["cost_live_max"] == pytest.approx(128.7e-6)  # (58 x 0.15 + 200 x 0.60) / 1e6
    assert model["cost_live_typical"] == pytest.approx(68.7e-6)  # (58 x 0.15 + 100 x 0.60) / 1e6
    assert model["cost_batch_typical"] == pytest.approx(34.35e-6)
    # judge: a is judged; b and c are to come. The judge prompt with an empty request and response is
    # 5,008 characters, so for request r it is 5,008 + len(r). Per call: system "You are a helpful
    # assistant." (28 chars: 7 + 4 = 11) + user ceil((5008 + len(r)) / 4) + 4 + the reply at the model's
    # typical 50 tokens: b = 11 + 1272 + 4 + 50 = 1337, c = 11 + 1282 + 4 + 50 = 1347; sum 2,684.
    assert len(build_judge_prompt("", "", "medical")) == 5008
    assert (judge["stored"], judge["calls"], judge["prompt_tokens"]) == (1, 2, 2684)
    assert (judge["output_tokens_typical_per_call"], judge["typical_from"]) == (20.0, 1)
    assert judge["cost_live_max"] == pytest.approx(2878e-6)  # (2684 x 0.50 + 2 x 512 x 1.50) / 1e6
    assert judge["cost_live_typical"] == pytest.approx(1402e-6)  # (2684 x 0.50 + 2 x 20 x 1.50) / 1e6
    assert doc["total"]["live_max"] == pytest.approx(128.7e-6 + 2878e-6)
    assert doc["total"]["batch_typical"] == pytest.approx((68.7e-6 + 1402e-6) / 2)
    assert (project / "medsafety.db").stat().st_mtime_ns == before  # only read


def test_dry_run_table_names_prices_and_method(example, capsys) -> None:
    data, project = example
    assert run_main(*_args(data, project)) == 0
    text = capsys.readouterr().out
    assert "Dry run, nothing called" in text and "model calls to make: 3 (stored: 0)" in text
    assert "as of 2025-08" in text and "characters/4 + 4 per message" in text
    assert run_main(*_args(data, project), "-j", "offline") == 0
    assert "not estimated (local judges, no API calls): judge2 (offline)" in capsys.readouterr().out


def test_unknown_price_shows_unknown_and_max_cost_refuses(example, capsys) -> None:
    data, project = example
    args = _args(data, project)
    args[2] = "openai:gpt-99"
    assert run_main(*args) == 0
    text = capsys.readouterr().out
    assert "unknown / unknown" in text and "unknown price: openai:gpt-99" in text
    assert run_main(*args, "--max-cost", "5") == 2
    err = capsys.readouterr().err
    assert "price of openai:gpt-99 is unknown" in err and len(err.strip().splitlines()) == 1
    assert not project.exists()


def test_user_prices_change_the_estimate(example, tmp_path, capsys) -> None:
    data, project = example
    prices = tmp_path / "p.toml"
    prices.write_text('[openai."gpt-4o-mini"]\ninput = 1000\noutput = 0\n')
    assert run_main(*_args(data, project, "--json", "--prices", str(prices))) == 0
    model = json.loads(capsys.readouterr().out)["stages"][0]
    assert model["cost_live_max"] == pytest.approx(72 * 1000 / 1e6)
    prices.write_text('[openai."gpt-4o-mini"]\ninput = 1\n')
    assert run_main(*_args(data, project, "--prices", str(prices))) == 2
    assert f"{prices}:1: [openai.\"gpt-4o-mini\"] needs 'output'" in capsys.readouterr().err


def test_hf_model_prompt_tokens_come_from_its_tokenizer(example, tiny_model_dir, capsys) -> None:
    data, project = example
    from transformers import AutoTokenizer

    from medsafetybench.models.formats import encode_prompt, render_prompt

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    args = _args(data, project, "--json")
    args[2] = f"hf:{tiny_model_dir}"
    assert run_main(*args) == 0
    model = json.loads(capsys.readouterr().out)["stages"][0]
    assert model["prompt_tokens_method"].startswith("the model's tokenizer")
    assert model["price"] == "local" and model["cost_live_max"] == 0.0
    # the tiny model's own chat template and tokenizer, not characters / 4 (which would give 72)
    want = sum(
        len(encode_prompt(tok, render_prompt("chat", ChatRequest.simple(r).messages, tok), "chat"))
        for r in REQUESTS.values()
    )
    assert model["prompt_tokens"] == want and want != 72


def test_dry_run_reads_a_store_of_the_previous_release_without_migrating_it(tmp_path, monkeypatch, capsys) -> None:
    import hashlib
    import shutil

    monkeypatch.delenv("MEDSAFETY_PRICES", raising=False)
    project = tmp_path / "proj"
    project.mkdir()
    db = project / "medsafety.db"
    shutil.copy(FIXTURES / "store_v1" / "medsafety.db", db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    # the 0.1.0 fixture's first run: the bundled sample set, fixture-model judged by fixture-judge
    assert (
        run_main(
            "eval",
            "-m",
            "openai:fixture-model@http://127.0.0.1:42281/v1",
            "-j",
            "openai:fixture-judge@http://127.0.0.1:45119/v1",
            "--split",
            "sample",
            "--project",
            str(project),
            "--dry-run",
            "--json",
        )
        == 0
    )
    model, judge = json.loads(capsys.readouterr().out)["stages"]
    assert (model["needed"], model["stored"], model["calls"]) == (25, 25, 0)
    assert (judge["needed"], judge["stored"], judge["calls"]) == (25, 25, 0)
    # typical output lengths from every stored response / judgement of those identities (55 each in 0.1.0)
    assert model["typical_from"] == 55 and model["output_tokens_typical_per_call"] == pytest.approx(496 / 55)
    assert judge["typical_from"] == 55 and model["price"] == judge["price"] == "local"
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # read only: not even migrated
