"""Llama Guard 4: prompts come from the checkpoint's own chat template (its text is not reproduced here).

Meta's Llama Guard 4 template could not be read (docs/judges.md), so these tests give the tiny verdict
model a STAND-IN template written for the test, in the shape of the Llama Guard 3 vision/1B templates
(text parts, a `categories` dict, `excluded_category_keys`), that renders Llama Guard 3's text. They
check the plumbing (categories passed, text parts, verbatim tokens, identity with the template digest),
not Llama Guard 4's real prompt.
"""

from __future__ import annotations

import shutil

import pytest

from helpers.fixtures_classifiers import HARMFUL, REFUSAL, judge_all
from medsafetybench.errors import UserError
from medsafetybench.judging import load_judge
from medsafetybench.judging.classifiers.categories import AMA_CATEGORIES, MLC_CATEGORIES
from medsafetybench.judging.classifiers.llamaguard3 import (
    LG3_HEAD,
    LG3_MIDDLE,
    LG3_TAIL,
    category_block,
    render_llamaguard3,
)

DEFAULTS = "{" + ", ".join(f'"{c.code}": "{c.name}"' for c in MLC_CATEGORIES) + "}"
STAND_IN_TEMPLATE = (
    "{%- if categories is not defined -%}{%- set categories = " + DEFAULTS + " -%}{%- endif -%}"
    "{{- " + repr(LG3_HEAD.format(role="Agent")) + " -}}"
    "{%- for key in categories -%}{%- if key not in excluded_category_keys -%}"
    "{{- key + ': ' + categories[key] + '\\n' -}}{%- endif -%}{%- endfor -%}"
    "{{- " + repr(LG3_MIDDLE) + " -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{%- set role = 'User' -%}{%- else -%}{%- set role = 'Agent' -%}{%- endif -%}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'text') -%}"
    "{{- role + ': ' + content['text'] | trim + '\\n\\n' -}}{%- endfor -%}{%- endfor -%}"
    "{{- " + repr(LG3_TAIL.format(role="Agent")) + " -}}"
)


@pytest.fixture(scope="module")
def lg4_dir(verdict_model_dir, tmp_path_factory):
    """The verdict model with the stand-in chat template in its tokenizer files."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("lg4-standin") / "model"
    shutil.copytree(verdict_model_dir, out)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = STAND_IN_TEMPLATE
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
def test_llamaguard4_renders_with_the_checkpoint_template(lg4_dir):
    judge = load_judge(f"llamaguard4:hf:{lg4_dir}")
    assert f"|lg4-ama-v1-{judge.template_digest}|p" in judge.identity and len(judge.template_digest) == 12
    (prompt,) = judge.build_prompts(HARMFUL)
    assert prompt.text == render_llamaguard3(HARMFUL.request, HARMFUL.response, AMA_CATEGORIES)
    assert category_block(AMA_CATEGORIES) in prompt.text  # the categories dict reached the template
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
        cfg = (bare / "tokenizer_config.json")
        import json

        data = json.loads(cfg.read_text())
        data.pop("chat_template", None)
        cfg.write_text(json.dumps(data))
        load_judge(f"llamaguard4:openai:lg4@{fake_openai.base_url}", tokenizer=str(bare))


@pytest.mark.slow
def test_llamaguard4_over_openai_with_a_local_tokenizer(fake_openai_factory, lg4_dir):
    from medsafetybench.testing.responders import classifier_responder

    srv = fake_openai_factory(classifier_responder)
    judge = load_judge(f"llamaguard4:openai:lg4@{srv.base_url}", tokenizer=str(lg4_dir))
    assert judge.identity.startswith(f"llamaguard4:openai:lg4@{srv.base_url}|fmt=verbatim|lg4-ama-v1-")
    assert "tokenizer" not in judge.spec.options or judge.spec.options["tokenizer"] == str(lg4_dir)
    (j,) = judge_all(judge, [HARMFUL])
    assert j.categories == ("P1",) and j.harmful
