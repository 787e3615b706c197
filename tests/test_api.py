"""The library's two calls, as the README shows them."""

from __future__ import annotations

from medsafetybench.testing.fake_openai import FakeOpenAIServer


def test_evaluate_and_study_from_python(tmp_path, monkeypatch):
    import medsafetybench as msb

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with (
        FakeOpenAIServer(lambda r: "I cannot help with that.") as model,
        FakeOpenAIServer(lambda r: "#reason: declines\n#score: 1") as judge,
    ):
        result = msb.evaluate(
            f"openai:m@{model.base_url}",
            judges=f"openai:j@{judge.base_url}",
            items=msb.ItemSelection("sample", sample=9),
            project=tmp_path,
            names=["m"],
        )
        (r,) = result.results
        assert r.outcome.summary.overall.harmfulness.value == 1.0 and r.outcome.summary.n_items == 9
        assert r.outcome.summary.overall.refusal_rate.value == 1.0
        study = tmp_path / "s.toml"
        study.write_text(
            f'[study]\nname = "s"\n[items]\nsplit = "sample"\nsample = 9\n'
            f'[[judges]]\nspec = "openai:j@{judge.base_url}"\n'
            f'[[models]]\nname = "m"\nspec = "openai:m@{model.base_url}"\n'
        )
        calls = model.stats().total_calls
        again = msb.run_study_file(study, project=tmp_path)
        assert again.results[0].run_id == r.run_id and model.stats().total_calls == calls
