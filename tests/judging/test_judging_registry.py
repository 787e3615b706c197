"""The judge registry: what `--judge` accepts, checks before loading, errors that name the judge,
and a new judge as one decorated class."""

from __future__ import annotations

import asyncio
import sys

import pytest

from medsafetybench.errors import UserError
from medsafetybench.judging import (
    JUDGES,
    JudgeCase,
    Judgement,
    ParsedJudgeSpec,
    load_judge,
    parse_judge_spec,
    register_judge,
    validate_judge_spec,
)
from medsafetybench.judging.llm import LLMJudge
from medsafetybench.judging.registry import unregister_judge

SECRET = "pw-0123456789"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ParsedJudgeSpec("offline")),
        ("offline", ParsedJudgeSpec("offline")),
        (" Offline ", ParsedJudgeSpec("offline")),
        ("openai:gpt-3.5-turbo-0125", ParsedJudgeSpec("llm", "openai:gpt-3.5-turbo-0125")),
        ("hf:/models/judge", ParsedJudgeSpec("llm", "hf:/models/judge")),
        ("llm:openai:j@http://h/v1", ParsedJudgeSpec("llm", "openai:j@http://h/v1")),
    ],
)
def test_parse(text, expected):
    assert parse_judge_spec(text) == expected


def test_unknown_judge_lists_the_choices_and_hides_secrets():
    with pytest.raises(UserError) as err:
        parse_judge_spec(f"bogus:m@http://u:{SECRET}@h/v1")
    assert "unknown judge 'bogus'" in str(err.value) and "offline" in str(err.value)
    assert SECRET not in str(err.value)
    assert str(parse_judge_spec(f"openai:j@http://u:{SECRET}@h/v1")) == "openai:j@http://h/v1"


def test_missing_key_error_names_the_judge(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    for call in (validate_judge_spec, load_judge):
        with pytest.raises(UserError) as err:
            call("openai:gpt-3.5-turbo-0125")
        assert str(err.value).startswith("--judge openai:gpt-3.5-turbo-0125: OPENAI_API_KEY is not set")
    with pytest.raises(UserError, match="^--judge2 openai:gpt-4o: OPENAI_API_KEY"):
        load_judge("openai:gpt-4o", role="--judge2")


def test_validate_checks_model_paths_without_loading():
    with pytest.raises(
        UserError, match="^--judge hf:/nonexistent/judge: model path '/nonexistent/judge' does not exist"
    ):
        validate_judge_spec("hf:/nonexistent/judge")
    with pytest.raises(UserError, match="takes no arguments"):
        validate_judge_spec("offline:extra")
    assert validate_judge_spec("openai:j@http://127.0.0.1:9/v1").name == "llm"


def test_options_split_between_judge_and_model(fake_openai):
    judge = load_judge(f"openai:j@{fake_openai.base_url}", max_attempts=2, concurrency=3, batch_size=4, timeout=None)
    assert isinstance(judge, LLMJudge) and judge.max_attempts == 2 and judge.model.concurrency == 3
    assert load_judge("offline", batch_size=8).batch_size == 256  # the offline judge takes no model options


class Constant:
    """A judge that scores everything 3: the whole of a new judge, registered by its decorator."""

    OPTIONS = frozenset({"score"})

    def __init__(self, args: str, score: int = 3) -> None:
        self.identity = f"constant:{args}"
        self.score = score

    @classmethod
    def from_spec(cls, args, *, model_options, **options):
        return cls(args, **options)

    async def judge(self, cases, on_result=None):
        out = [Judgement(self.score) for _ in cases]
        for i, j in enumerate(out):
            if on_result:
                on_result(i, j)
        return out

    async def aclose(self) -> None:
        pass


def test_a_new_judge_is_one_decorated_class():
    register_judge("constant")(Constant)
    try:
        judge = load_judge("constant:v1", score=2, concurrency=4)
        assert judge.identity == "constant:v1"
        assert [j.score for j in asyncio.run(judge.judge([JudgeCase("r", "x")]))] == [2]
    finally:
        unregister_judge("constant")
        JUDGES.pop("constant", None)


def test_a_module_named_like_a_judge_is_not_guessed(tmp_path, monkeypatch):
    """Two ways to register, no third: a module called after a name is not imported by guess."""
    import medsafetybench.judging as judging_pkg

    (tmp_path / "tmpjudge_x.py").write_text(
        "from medsafetybench.judging import register_judge\n"
        "@register_judge('tmpjudge_x')\n"
        "class J:\n    OPTIONS = frozenset()\n    identity = 'tmpjudge_x'\n"
        "    @classmethod\n    def from_spec(cls, args, *, model_options, **o):\n        return cls()\n"
    )
    monkeypatch.setattr(judging_pkg, "__path__", [*judging_pkg.__path__, str(tmp_path)])
    with pytest.raises(UserError, match="unknown judge 'tmpjudge_x'"):
        load_judge("tmpjudge_x")
    assert "medsafetybench.judging.tmpjudge_x" not in sys.modules


@pytest.mark.parametrize("name", sorted(JUDGES))
def test_every_built_in_judge_entry_imports(name):
    from medsafetybench.judging.registry import _REGISTRY

    assert _REGISTRY.get(name) is not None


def test_the_default_offline_judge_is_stated_once():
    """`offline` is an alias of exactly one named version, in the one table."""
    assert JUDGES["offline"] in {v for k, v in JUDGES.items() if k.startswith("offline-v")}


def test_loaded_judges_carry_a_secret_free_spec_that_rebuilds_them(fake_openai):
    from medsafetybench.judging import JudgeSpec

    url = fake_openai.base_url.replace("http://", f"http://u:{SECRET}@")
    judge = load_judge(f"openai:j@{url}", concurrency=3, timeout=5.0, api_key=SECRET, max_attempts=2)
    assert judge.spec == JudgeSpec(
        f"openai:j@{fake_openai.base_url}", {"concurrency": 3, "timeout": 5.0, "max_attempts": 2}
    )
    again = load_judge(judge.spec.spec, **judge.spec.options)
    assert again.identity == judge.identity
    assert load_judge("offline").spec == JudgeSpec("offline", {})
