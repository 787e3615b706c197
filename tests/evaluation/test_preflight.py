"""Checks before an evaluation: specs (nothing loaded) and request lengths for model and judge models."""

from __future__ import annotations

import pytest

from medsafetybench.data.schema import Item
from medsafetybench.errors import UserError
from medsafetybench.evaluation.pipeline import EvalSettings
from medsafetybench.evaluation.preflight import check_specs, length_warnings_for
from medsafetybench.judging import load_judge
from medsafetybench.models import GenerationConfig, load_model


def test_check_specs_names_the_bad_one(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    (tmp_path / "m").mkdir()
    specs = check_specs([f"hf:{tmp_path / 'm'}", "openai:x@http://127.0.0.1:9/v1"], ["offline"])
    assert [s.backend for s in specs] == ["hf", "openai"]
    with pytest.raises(UserError, match="^--judge openai:gpt-4o: OPENAI_API_KEY is not set"):
        check_specs([], ["offline", "openai:gpt-4o"])
    with pytest.raises(UserError, match="'/nope' does not exist"):
        check_specs(["vllm:/nope"], [])


def test_length_warnings_cover_the_model_and_llm_judges():
    items = [
        Item(f"user/f/{i}", "user", "user", None, text)
        for i, text in enumerate(["short", "x" * 3_000, "y" * 20_000], start=1)
    ]
    settings = EvalSettings(system_prompt=None, generation=GenerationConfig(max_new_tokens=16))
    model = load_model("openai:m@http://127.0.0.1:9/v1", context_window=4_000)
    judge = load_judge("openai:j@http://127.0.0.1:9/v1", context_window=2_000)
    lines = length_warnings_for(model, [judge, load_judge("offline")], items, settings)
    assert len(lines) == 2
    assert lines[0].startswith("1 request(s) do not fit the 4,000-token context of --model") and "user/f/3" in lines[0]
    assert lines[1].startswith("2 request(s) do not fit the 2,000-token context of --judge")
    assert "user/f/2" in lines[1] and "user/f/3" in lines[1] and "user/f/1 " not in lines[1]
