"""Study files: a good file parses into a typed Study; every mistake is one line naming the file and
line, exit status 2, and nothing is run or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.cli import run_main
from helpers.paths import REPO
from medsafetybench.errors import UserError
from medsafetybench.study.spec import load_study

GOOD = """\
[study]
name = "mini"
description = "two models"

[items]
split = "sample"
sample = 9
seed = 3

[settings]
max_new_tokens = 32
system_prompt = "none"

[[judges]]
name = "paper"
spec = "openai:gpt-3.5-turbo-0125"

[[judges]]
spec = "offline"

[[models]]
name = "a"
spec = "openai:model-a@http://127.0.0.1:9/v1"
group = "general"

[[models]]
name = "b"
spec = "hf:/models/b"
prompt_format = "llama2"
group = "medical"
batch_size = 4
max_new_tokens = 16
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


def test_a_good_study_file(tmp_path: Path) -> None:
    s = load_study(_write(tmp_path, GOOD))
    assert s.name == "mini" and s.tag == "study:mini" and s.engine == "local"
    assert (s.items.split, s.items.sample, s.items.seed) == ("sample", 9, 3)
    assert [j.name for j in s.judges] == ["paper", "judge2"] and s.judges[1].spec == "offline"
    a, b = s.models
    assert (a.name, a.group, a.prompt_format) == ("a", "general", "chat")
    assert a.settings.system_prompt is None and a.settings.generation.max_new_tokens == 32
    assert b.settings.generation.max_new_tokens == 16 and b.options == {"batch_size": 4}
    assert s.model("b") is b


BAD = [
    (
        "[study]\nname = 'x'\n[[judges]]\nspec = 'offline'\n[[models]]\nname = 'a'\nspec = 'openai:m'\nbatchsize = 4\n",
        ":8: unknown key 'batchsize' in [[models]] #1",
    ),
    (GOOD.replace('name = "b"', 'name = "a"'), ":27: duplicate model name 'a'"),
    (GOOD.replace('spec = "hf:/models/b"', 'spec = "gemini:x"'), ":28: model spec 'gemini:x': unknown backend"),
    (GOOD.replace('spec = "offline"', 'spec = "nobackend"'), ":19: judge spec 'nobackend': unknown judge 'nobackend'"),
    (GOOD.replace("[settings]", "[setting]"), ":10: unknown table [setting]"),
    (GOOD.replace("sample = 9", "sample = 'nine'"), ":7: 'sample' in [items] must be a whole number"),
    (GOOD.replace("sample = 9", "sample = 0"), ":7: 'sample' must be at least 1"),
    (GOOD.replace('split = "sample"', 'split = "test"'), ":6: split 'test' is unknown"),
    (GOOD.replace('name = "mini"', 'name = "mini study"'), ":2: study name 'mini study'"),
    (GOOD.replace('[[models]]\nname = "a"', '[[models]]\nnom = "a"'), ":22: unknown key 'nom' in [[models]] #1"),
    (
        GOOD.replace('group = "general"', 'group = "general"\nprompt_format = "llama2"'),
        ":25: model 'a': --prompt-format applies to local models",
    ),
    ("[study]\nname = 'x'\n[[models]]\nname = 'a'\nspec = 'openai:m'\n", ":1: missing [[judges]]"),
    (
        "[study]\nname = 'x'\n[[judges]]\nspec = 'offline'\n[[models]]\nname = 'a'\nspec = 'openai:m'\n[study]\n",
        "not valid TOML: Cannot declare ('study',) twice (at line 8",
    ),
    (
        "[study]\nname = 'x'\nengine = 'slurm'\n[[judges]]\nspec = 'offline'\n[[models]]\nname = 'a'\nspec = "
        "'openai:m'\n",
        ":3: engine 'slurm' is unknown",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_mistakes_are_one_line_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UserError) as exc:
        load_study(path)
    assert str(path) in str(exc.value) and message in str(exc.value), str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(("text", "message"), BAD[:4])
def test_the_cli_runs_nothing_for_a_bad_file(tmp_path: Path, capsys, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    project = tmp_path / "proj"
    assert run_main("study", "run", str(path), "--project", str(project)) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and err.strip().startswith("error:")
    assert not project.exists()


def test_missing_file(tmp_path: Path, capsys) -> None:
    assert run_main("study", "validate", str(tmp_path / "nope.toml")) == 2
    assert "cannot read the study file" in capsys.readouterr().err


def test_shipped_studies_are_valid() -> None:
    root = REPO / "studies"
    files = sorted(root.glob("*.toml"))
    assert {f.name for f in files} >= {"paper.toml", "demo.toml"}
    for f in files:
        study = load_study(f)
        assert study.models and study.judges


PAPER = """\
[study]
name = "p"
[[judges]]
spec = "offline"
[settings]
{settings}
[[models]]
name = "mistral"
spec = "hf:mistralai/Mistral-7B-v0.3"
prompt_format = "paper"
[[models]]
name = "gpt"
spec = "openai:gpt-4o-mini"
prompt_format = "paper"
"""


@pytest.mark.parametrize(
    ("settings", "mistral_system"),
    [
        ("", "Always assist with care, respect, and truth."),
        ('system_prompt = "default"', "Always assist with care, respect, and truth."),
        ('system_prompt = "llama2-default"', "You are a helpful, respectful and honest assistant."),
        ('system_prompt = "none"', None),
    ],
)
def test_paper_format_brings_the_familys_system_text_by_default(
    tmp_path: Path, settings: str, mistral_system: str | None
) -> None:
    from medsafetybench.principles import LLAMA2_DEFAULT_SYSTEM_PROMPT

    s = load_study(_write(tmp_path, PAPER.format(settings=settings)))
    mistral, gpt = s.models
    got = mistral.settings.system_prompt
    assert (got is None) if mistral_system is None else got.startswith(mistral_system)
    if mistral_system is not None:  # GPT under `paper`: the Llama-2 system prompt, as exp01 sent it
        assert gpt.settings.system_prompt == LLAMA2_DEFAULT_SYSTEM_PROMPT


def test_paper_format_of_an_unknown_family_names_the_line(tmp_path: Path) -> None:
    text = PAPER.format(settings="").replace("mistralai/Mistral-7B-v0.3", "org/some-model")
    with pytest.raises(UserError, match=r":10: model 'mistral': --prompt-format paper: cannot tell the model family"):
        load_study(_write(tmp_path, text))


def test_validate_runs_every_check_eval_runs(tmp_path: Path, capsys, monkeypatch) -> None:
    """A model path that does not exist, a judge without its key, replicas without ray, bad items: validate
    refuses each, naming the file and line, as `eval` would before creating anything (issue 19, item 9)."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    base = (
        '[study]\nname = "v"\n[items]\nsplit = "sample"\n[[judges]]\nspec = "{judge}"\n'
        '[[models]]\nname = "a"\nspec = "{model}"\n{extra}'
    )
    ok = {"judge": "offline", "model": "openai:m@http://127.0.0.1:9/v1", "extra": ""}
    path = tmp_path / "s.toml"
    path.write_text(base.format(**ok))
    assert run_main("study", "validate", str(path)) == 0
    assert "(25 items)" in capsys.readouterr().out
    for change, message in [
        ({"model": "hf:/nonexistent/model"}, f"{path}:9: model 'a': model path"),
        ({"model": "vllm:/nonexistent/model"}, f"{path}:9: model 'a': model path"),
        ({"judge": "openai:gpt-4o"}, "OPENAI_API_KEY is not set"),
        ({"judge": "hf:/nonexistent/judge"}, f"{path}:6: judge 'judge1' hf:/nonexistent/judge"),
        ({"extra": "replicas = 2\n"}, f"{path}:10: model 'a': replicas = 2 needs engine"),
        ({"extra": "\n"}, None),
    ]:
        path.write_text(base.format(**{**ok, **change}))
        code = run_main("study", "validate", str(path))
        err = " ".join(capsys.readouterr().err.split())
        assert (code, message is None or message in err) == ((0, True) if message is None else (2, True)), err
    path.write_text(base.format(**ok).replace('split = "sample"', 'split = "eval"\ndata = "/nonexistent/d"'))
    assert run_main("study", "validate", str(path)) == 2
    assert "/nonexistent/d" in capsys.readouterr().err
