"""Llama Guard 4: prompts come from the checkpoint's own chat template (its text is not reproduced here).

Meta's Llama Guard 4 template could not be found (`../shared/reference/classifiers/llama_guard_4.output.md`),
so nothing here is byte-exact to an official file. The tests give the judge STAND-IN templates
written for them: one in the shape of the Llama Guard 3 1B template (text parts, a `categories` dict,
`excluded_category_keys`) that renders `llama_guard_4.RECONSTRUCTED.txt` (llama-stack's text in the
Llama 4 chat format), one that renders Llama Guard 3's text for the tiny verdict model, and one that
ignores `categories`. They check the plumbing (categories passed and present, text parts, verbatim
tokens, identity with the template digest, the refusal when the categories are lost).
"""

from __future__ import annotations

import json
import shutil
from string import Template

import pytest

from helpers.fixtures_classifiers import HARMFUL, REFUSAL, judge_all
from helpers.reference import classifier_file, needs_classifier_reference
from medsafetybench.errors import UserError
from medsafetybench.judging import load_judge
from medsafetybench.judging.base import JudgeCase
from medsafetybench.judging.classifiers.categories import AMA_PROMPT_CATEGORIES, MLC_CATEGORIES
from medsafetybench.judging.classifiers.llamaguard3 import category_block, render_llamaguard3
from medsafetybench.judging.classifiers.llamaguard4 import LlamaGuard4, LlamaGuard4MLC
from medsafetybench.models.formats import encode_prompt

LG4_SPECIAL = ("<|header_start|>", "<|header_end|>", "<|eot|>")
DEFAULTS = "{" + ", ".join(f'"{c.code}": "{c.name}"' for c in MLC_CATEGORIES) + "}"
MESSAGES = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{%- set role = 'User' -%}"
    "{%- else -%}{%- set role = 'Agent' -%}{%- endif -%}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'text') -%}"
    "{{- role + ': ' + content['text'] | trim + '\\n\\n' -}}{%- endfor -%}{%- endfor -%}"
)
CATEGORIES = (
    "{%- if categories is not defined -%}{%- set categories = " + DEFAULTS + " -%}{%- endif -%}"
    "{%- for key in categories -%}{%- if key not in excluded_category_keys -%}"
    "{{- key + ': ' + categories[key] + '\\n' -}}{%- endif -%}{%- endfor -%}"
)


def stand_in(head: str, middle: str, tail: str, *, reads_categories: bool = True) -> str:
    """A chat template: head, the category lines, middle, the `Role: text` turns, tail."""
    listed = CATEGORIES if reads_categories else "{{- " + repr(category_block(MLC_CATEGORIES)) + " -}}"

    def text(s: str) -> str:
        return "{{- " + repr(s) + " -}}"

    return text(head) + listed + text(middle) + MESSAGES + text(tail)


def lg3_stand_in(**kwargs) -> str:
    """A template that renders Llama Guard 3 8B's text (what the verdict model was taught)."""
    skeleton = render_llamaguard3("USERTEXT", "AGENTTEXT", ())
    head, rest = skeleton.split("<END UNSAFE CONTENT CATEGORIES>", 1)
    middle, tail = rest.split("User: USERTEXT\n\nAgent: AGENTTEXT\n\n")
    return stand_in(head, "<END UNSAFE CONTENT CATEGORIES>" + middle, tail, **kwargs)


def reconstructed_stand_in() -> str:
    """A template that renders `llama_guard_4.RECONSTRUCTED.txt` for a response classification."""
    text = Template(classifier_file("llama_guard_4.RECONSTRUCTED.txt")).safe_substitute(agent_type="Agent")
    head, rest = text.split("$categories\n", 1)
    middle, tail = rest.split("$conversations\n\n", 1)
    return stand_in(head, middle, tail)


@pytest.fixture(scope="module")
def lg4_tokenizer():
    pytest.importorskip("transformers")
    from medsafetybench.testing.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer(bos_token="<|begin_of_text|>", special_tokens=LG4_SPECIAL)


@pytest.fixture()
def guard(fake_openai):
    from medsafetybench.models.loading import load_model

    return load_model(f"openai:lg4@{fake_openai.base_url}", prompt_format="verbatim")


@needs_classifier_reference
def test_the_judge_sends_what_the_template_renders(lg4_tokenizer, guard):
    """With a template of the reconstructed shape, the prompt is llama-stack's text filled the way
    llama-stack fills it (`string.Template`), with the AMA principles as S1-S9; token ids are
    `apply_chat_template`'s (verbatim: one BOS, the template's own)."""
    lg4_tokenizer.chat_template = reconstructed_stand_in()
    judge = LlamaGuard4(guard, tokenizer=lg4_tokenizer)
    (prompt,) = judge.build_prompts(JudgeCase("{USER_MESSAGE}", "{AGENT_MESSAGE}"))
    expected = Template(classifier_file("llama_guard_4.RECONSTRUCTED.txt")).substitute(
        agent_type="Agent",
        categories=category_block(AMA_PROMPT_CATEGORIES).rstrip("\n"),
        conversations="User: {USER_MESSAGE}\n\nAgent: {AGENT_MESSAGE}",
    )
    assert prompt.text == expected and prompt.categories == tuple(f"S{i}" for i in range(1, 10))
    assert dict(prompt.code_map)["S3"] == "P3"
    ids = encode_prompt(lg4_tokenizer, prompt.text, LlamaGuard4.PROMPT_FORMAT)
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "{USER_MESSAGE}"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "{AGENT_MESSAGE}"}]},
    ]
    official = lg4_tokenizer.apply_chat_template(
        messages,
        tokenize=True,
        add_generation_prompt=True,
        excluded_category_keys=[],
        categories={c.code: f"{c.name}\n{c.description}" for c in AMA_PROMPT_CATEGORIES},
    )
    assert (
        ids == list(official["input_ids"])
        and ids.count(lg4_tokenizer.bos_token_id) == 1
        and ids[0] == lg4_tokenizer.bos_token_id
    )
    mlc = LlamaGuard4MLC(guard, tokenizer=lg4_tokenizer)
    assert category_block(MLC_CATEGORIES) in mlc.build_prompts(HARMFUL)[0].text  # the template's defaults


def test_a_template_that_ignores_the_categories_is_refused(lg4_tokenizer, guard):
    lg4_tokenizer.chat_template = lg3_stand_in(reads_categories=False)
    with pytest.raises(UserError, match="ignored the custom categories") as info:
        LlamaGuard4(guard, tokenizer=lg4_tokenizer)
    assert "\n" not in str(info.value) and "S1, S2, S3" in str(info.value)
    judge = LlamaGuard4MLC(guard, tokenizer=lg4_tokenizer)  # the checkpoint's own list needs no check
    assert category_block(MLC_CATEGORIES) in judge.build_prompts(HARMFUL)[0].text


def test_load_judge_refuses_before_judging(tmp_path, fake_openai, lg4_tokenizer):
    lg4_tokenizer.chat_template = lg3_stand_in(reads_categories=False)
    lg4_tokenizer.save_pretrained(tmp_path / "tok")
    with pytest.raises(UserError, match=r"--judge llamaguard4.*ignored the custom categories"):
        load_judge(f"llamaguard4:openai:lg4@{fake_openai.base_url}", tokenizer=str(tmp_path / "tok"))
    assert fake_openai.stats().total_calls == 0


@pytest.fixture(scope="module")
def lg4_dir(verdict_model_dir, tmp_path_factory):
    """The verdict model with the Llama Guard 3 stand-in chat template in its tokenizer files."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("lg4-standin") / "model"
    shutil.copytree(verdict_model_dir, out)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = lg3_stand_in()
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
def test_llamaguard4_renders_with_the_checkpoint_template(lg4_dir):
    judge = load_judge(f"llamaguard4:hf:{lg4_dir}")
    assert f"|lg4-ama-v2-{judge.template_digest}|p" in judge.identity and len(judge.template_digest) == 12
    (prompt,) = judge.build_prompts(HARMFUL)
    assert prompt.text == render_llamaguard3(HARMFUL.request, HARMFUL.response, AMA_PROMPT_CATEGORIES)
    harmful, refusal = judge_all(judge, [HARMFUL, REFUSAL])
    assert harmful.categories == ("P3",) and harmful.metadata["principles"] == [3] and harmful.score >= 4
    assert refusal.harmful is False and refusal.score <= 3
    mlc = load_judge(f"llamaguard4-mlc:hf:{lg4_dir}", logprobs=False)
    (prompt,) = mlc.build_prompts(HARMFUL)
    assert prompt.text == render_llamaguard3(HARMFUL.request, HARMFUL.response, MLC_CATEGORIES)  # template defaults
    assert judge_all(mlc, [HARMFUL])[0].categories == ("S2",)


def test_llamaguard4_needs_a_tokenizer_with_a_template(fake_openai, tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="needs the checkpoint's tokenizer files"):
        load_judge(f"llamaguard4:openai:lg4@{fake_openai.base_url}")
    with pytest.raises(UserError, match="has no chat template"):
        bare = tmp_path / "bare"
        shutil.copytree(tiny_model_dir, bare)
        (bare / "chat_template.jinja").unlink(missing_ok=True)
        cfg = bare / "tokenizer_config.json"
        data = json.loads(cfg.read_text())
        data.pop("chat_template", None)
        cfg.write_text(json.dumps(data))
        load_judge(f"llamaguard4:openai:lg4@{fake_openai.base_url}", tokenizer=str(bare))


@pytest.mark.slow
def test_llamaguard4_over_openai_with_a_local_tokenizer(fake_openai_factory, lg4_dir):
    from medsafetybench.testing.responders import classifier_responder

    srv = fake_openai_factory(classifier_responder)
    judge = load_judge(f"llamaguard4:openai:lg4@{srv.base_url}", tokenizer=str(lg4_dir))
    assert judge.identity.startswith(f"llamaguard4:openai:lg4@{srv.base_url}|fmt=verbatim|bos=server|")
    assert "|lg4-ama-v2-" in judge.identity
    assert "tokenizer" not in judge.spec.options or judge.spec.options["tokenizer"] == str(lg4_dir)
    (j,) = judge_all(judge, [HARMFUL])
    assert j.categories == ("P1",) and j.harmful and j.raw == "unsafe\nS1"


def test_eval_refuses_a_template_without_the_categories_before_making_anything(
    tmp_path, fake_openai, lg4_tokenizer, capsys
):
    """`medsafety eval --judge llamaguard4:hf:DIR` whose template drops `categories`: one line, exit 2,
    no project folder (only DIR's tokenizer files are read; no weights are needed to refuse)."""
    from helpers.cli import run_main

    folder = tmp_path / "lg4"
    lg4_tokenizer.chat_template = lg3_stand_in(reads_categories=False)
    lg4_tokenizer.save_pretrained(folder)
    project = tmp_path / "p"
    code = run_main(
        "eval",
        "--model",
        f"openai:m@{fake_openai.base_url}",
        "--judge",
        f"llamaguard4:hf:{folder}",
        "--split",
        "sample",
        "--limit",
        "2",
        "--project",
        str(project),
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and not project.exists() and fake_openai.stats().total_calls == 0
    assert len(err.splitlines()) == 1 and "ignored the custom categories" in err and "Traceback" not in err
