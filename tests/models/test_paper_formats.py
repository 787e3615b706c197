"""The paper's prompt formats against the official code, read at test time (tests/helpers/reference.py):
every family's prompt byte for byte, the family choice for every model name the paper used, the GPT
system prompt and settings, the tokenisation, and the response cut, down to generating with the tiny
model exactly as the reference's transformers pipeline and exp02 cut do."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from helpers.reference import (
    call_keywords,
    exp01_builder_for,
    exp01_families,
    exp01_gpt_call,
    exp01_prompt_builders,
    exp02_cut,
    exp02_uncut_models,
    model_hf_names,
    needs_reference,
)
from medsafetybench.errors import UserError
from medsafetybench.models.base import ChatRequest, GenerationConfig, Message
from medsafetybench.models.formats import encode_prompt, finish_reply, render_prompt, resolve_format
from medsafetybench.models.paper_formats import (
    PAPER_FORMATS,
    detect_paper_format,
    format_for_name,
    paper_response,
    paper_system_prompt,
)
from medsafetybench.principles import LLAMA2_DEFAULT_SYSTEM_PROMPT

# exp01's branch (named by one family list it serves) -> our format
BRANCHES = {
    "family_llama2": "paper-llama2",
    "family_mistral": "paper-mistral",
    "family_vicuna": "paper-vicuna",
    "family_medalpaca": "paper-medalpaca",
    "family_med42": "paper-med42",
    "family_pythia": "paper-pythia",
}
REQUESTS = [
    "What is asthma?",
    "He said \"stop\", then 'left' it at that.",
    "Use {braces}, {0}, {question} and %s %d literally",
    "   leading and trailing spaces   ",
    "Ünïcödé — 医学, émigré 🚑",
    "two\nlines\tand a tab",
    "",
]


def paper_prompt(fmt: str, request: str) -> str:
    return render_prompt(fmt, ChatRequest.simple(request, system=paper_system_prompt(fmt)).messages)


@needs_reference
@pytest.mark.parametrize("request_text", REQUESTS)
@pytest.mark.parametrize(("branch", "fmt"), sorted(BRANCHES.items()))
def test_prompt_is_exp01_byte_for_byte(branch: str, fmt: str, request_text: str) -> None:
    assert paper_prompt(fmt, request_text) == exp01_builder_for(branch)(request_text)


@needs_reference
def test_every_exp01_branch_is_covered() -> None:
    """Each exp01 branch maps to exactly one paper format, except GPT (the bare question)."""
    branches = exp01_prompt_builders()
    assert len(branches) == 7
    for families, fn in branches:
        ours = {BRANCHES[f] for f in families if f in BRANCHES}
        if fn is None:
            assert families == {"family_gpt"}
        else:
            assert len(ours) == 1, families


@needs_reference
def test_every_model_the_paper_prompted_resolves_to_its_branch() -> None:
    """exp01's names (fine-tunes included) and model_hf.py's hub ids pick the branch exp01 used."""
    hub = model_hf_names()
    for families, fn in exp01_prompt_builders():
        if fn is None:
            continue
        expected = {BRANCHES[f] for f in families if f in BRANCHES}.pop()
        for fam in families:
            for name in exp01_families()[fam]:
                assert format_for_name(name) == expected, name
                if name in hub:
                    assert format_for_name(hub[name]) == expected, hub[name]
                    assert resolve_format("paper", hub[name]) == expected


@needs_reference
def test_gpt_prompting_is_ours_by_default() -> None:
    """exp01 sends GPT models the Llama-2 system prompt and the bare question, greedy, 512 tokens;
    openai: sends the chat's messages as they are, and eval's default system prompt is that text."""
    system, kw = exp01_gpt_call()
    assert system == LLAMA2_DEFAULT_SYSTEM_PROMPT
    assert kw["temperature"] == 0.0 and kw["max_new_tokens"] == 512
    assert GenerationConfig() == GenerationConfig(max_new_tokens=kw["max_new_tokens"], temperature=kw["temperature"])
    assert call_keywords("exps/exp01_prompt_models.py", "create_model_hf") == {
        "model_name": "args.model_name",
        "do_sample": "False",
        "max_new_tokens": "max_new_tokens",
    }


@needs_reference
def test_system_prompts_are_the_references() -> None:
    for branch, fmt in BRANCHES.items():
        marker = "\x00Q\x00"
        golden = exp01_builder_for(branch)(marker)
        assert paper_system_prompt(fmt) in golden
        assert paper_prompt(fmt, marker) == golden


@needs_reference
@pytest.mark.parametrize(
    "completion",
    [
        " The answer is no.",
        "\n\n  padded  \n",
        "",
        "A reply that repeats PROMPT inside it.",
        'Ünïcödé {braces} "quotes" ',
        "Answer: again",
    ],
)
def test_response_cut_is_exp02(completion: str) -> None:
    cut = exp02_cut()
    for fmt in PAPER_FORMATS:
        prompt = paper_prompt(fmt, 'What is "x"? {y} ')
        text = completion.replace("PROMPT", prompt)
        assert paper_response(prompt, text) == cut(prompt + text, prompt)
        assert finish_reply(fmt, prompt, text) == cut(prompt + text, prompt)
    assert finish_reply("llama2", "p", " raw ") == " raw "  # family formats keep the text as generated


@needs_reference
def test_gpt_responses_are_uncut_for_the_papers_gpt_runs() -> None:
    """exp02 takes gpt3/gpt4 responses as they are (openai: never cuts). Its other GPT names
    (gpt-4o, ...) fall into the local-model cut that removes the question text: a reference slip."""
    assert exp02_uncut_models() == ["gpt3", "gpt4"]
    assert set(exp01_families()["family_gpt"]) - {"gpt3", "gpt4"}


def test_formats_are_single_turn_and_system_optional() -> None:
    multi = (Message("user", "a"), Message("assistant", "b"), Message("user", "c"))
    for fmt in PAPER_FORMATS:
        with pytest.raises(UserError, match="single-turn"):
            render_prompt(fmt, multi)
    assert render_prompt("paper-llama2", (Message("user", "Q"),)) == "[INST] Question: Q\n\nAnswer: "
    assert render_prompt("paper-vicuna", (Message("user", "Q"),)) == "USER:Q ASSISTANT: "
    assert render_prompt("paper-medalpaca", (Message("user", "Q"),)) == "Question: Q\n\nAnswer: "
    assert render_prompt("paper-pythia", (Message("user", "Q"),)) == "Question: Q\n\nAnswer: "
    assert render_prompt("paper-med42", (Message("user", "Q"),)) == (
        "\n" + " " * 12 + "<|prompter|>: Q\n" + " " * 12 + "<|assistant|>: \n" + " " * 12
    )
    with pytest.raises(UserError, match="resolved"):
        render_prompt("paper", (Message("user", "Q"),))


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("/models/Meta-Llama-3.1-8B-Instruct", "paper-llama2"),
        ("epfl-llm/meditron-7b", "paper-llama2"),
        ("wanglab/ClinicalCamel-70B", "paper-llama2"),
        ("medalpaca/medalpaca-13b", "paper-medalpaca"),
        ("m42-health/med42-70b", "paper-med42"),
        ("lmsys/vicuna-13b-v1.5", "paper-vicuna"),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "paper-mistral"),
        ("EleutherAI/pythia-6.9b-deduped", "paper-pythia"),
        ("/ckpt/medalpaca-7b/checkpoint-500", "paper-medalpaca"),
        ("/runs/my-model", None),
        ("gpt2", None),
    ],
)
def test_family_from_name(name: str, fmt: str | None) -> None:
    assert format_for_name(name) == fmt


def _folder(tmp_path: Path, name: str, config: dict) -> Path:
    d = tmp_path / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(config))
    return d


def test_family_from_config_and_fine_tune_manifest(tmp_path: Path) -> None:
    d = _folder(tmp_path, "a", {"model_type": "mistral"})
    assert detect_paper_format(str(d), d)[0] == "paper-mistral"
    d = _folder(tmp_path, "b", {"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"]})
    assert detect_paper_format(str(d), d)[0] == "paper-pythia"
    out = tmp_path / "ft-out"
    merged = _folder(out, "merged", {"model_type": "llama"})
    (out / "manifest.json").write_text(json.dumps({"base": {"ref": "/models/meditron-7b"}}))
    assert resolve_format("paper", str(merged), merged) == "paper-llama2"
    d = _folder(tmp_path, "c", {"model_type": "llama"})
    with pytest.raises(UserError, match=r"model_type 'llama'.*--prompt-format paper-llama2\|paper-mistral"):
        resolve_format("paper", str(d), d)
    assert resolve_format("paper-vicuna", str(d), d) == "paper-vicuna"
    with pytest.raises(UserError, match="unknown prompt format 'paper-gpt'"):
        resolve_format("paper-gpt", str(d), d)


# ------------------------------------------------------------------------- tiny model, end to end


@needs_reference
def test_tokenisation_is_the_references(tiny_model_dir: Path) -> None:
    """model_ft.py tokenises with `tokenizer(prompt)` (the defaults: `<s>` added), and so do we."""
    from transformers import AutoTokenizer

    assert "add_special_tokens" not in call_keywords("models/model_ft.py", "tokenizer")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for fmt in PAPER_FORMATS:
        for q in REQUESTS:
            text = paper_prompt(fmt, q)
            ids = encode_prompt(tok, text, fmt)
            assert ids == tok(text)["input_ids"] and ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


@needs_reference
def test_generation_matches_reference_pipeline_and_cut(tiny_model_dir: Path) -> None:
    """Our hf: backend under `paper` gives, for a batch, what model_hf.py's transformers pipeline
    (greedy, prompt + completion) followed by exp02's cut gives for each request alone."""
    from transformers import pipeline

    from medsafetybench.models.hf_backend import HFChatModel

    kw = call_keywords("models/model_hf.py", "pipeline")
    assert kw["task"] == "'text-generation'" and kw["do_sample"] == "do_sample"
    new_tokens = 24  # the paper's 512 is the GenerationConfig default; fewer keeps the test quick
    pipe = pipeline("text-generation", model=str(tiny_model_dir), do_sample=False, max_new_tokens=new_tokens)
    model = HFChatModel(tiny_model_dir, prompt_format="paper", batch_size=4)
    assert model.prompt_format == "paper-llama2"  # from the folder name, tiny-llama*
    cut = exp02_cut()
    config = GenerationConfig(max_new_tokens=new_tokens)
    for fmt in ("paper-llama2", "paper-med42", "paper-vicuna"):
        model.prompt_format = fmt
        requests = [ChatRequest.simple(q, system=paper_system_prompt(fmt), config=config) for q in REQUESTS]
        ours = [c.text for c in asyncio.run(model.generate(requests))]
        for q, got in zip(REQUESTS, ours, strict=True):
            prompt = paper_prompt(fmt, q)
            full = pipe(prompt)[0]["generated_text"]
            assert full.startswith(prompt)
            assert got == cut(full, prompt), (fmt, q)
    assert any(ours)


@needs_reference
def test_fine_tuned_model_path_differs_only_by_special_token_text(tiny_model_dir: Path, tiny_adapter_dir: Path) -> None:
    """model_ft.py decodes without skipping special tokens, so the paper's fine-tuned-model responses
    carry `<s>` / `</s>` text into the judge; we skip them (documented), and agree otherwise."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medsafetybench.models.hf_backend import HFChatModel

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    merged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(tiny_adapter_dir)
    ).merge_and_unload()
    ours = HFChatModel(tiny_model_dir, tiny_adapter_dir, prompt_format="paper")
    cut = exp02_cut()
    config = GenerationConfig(max_new_tokens=20)
    got = asyncio.run(
        ours.generate([ChatRequest.simple(q, system=LLAMA2_DEFAULT_SYSTEM_PROMPT, config=config) for q in REQUESTS[:3]])
    )
    for q, completion in zip(REQUESTS[:3], got, strict=True):
        prompt = paper_prompt("paper-llama2", q)
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = merged.generate(
                inputs=ids,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
                do_sample=False,
                max_new_tokens=20,
            )
        theirs = cut(tok.decode(out[0]), prompt)
        assert theirs.startswith(tok.bos_token)
        assert completion.text == theirs.replace(tok.bos_token, "").replace(tok.eos_token, "").strip()


def test_paper_identity_is_the_resolved_format(tiny_model_dir: Path) -> None:
    """`paper` and the format it resolves to are one identity (responses shared); other formats,
    old names included, keep their own identity strings."""
    from medsafetybench.models.hf_backend import HFChatModel

    auto = HFChatModel(tiny_model_dir, prompt_format="paper").identity
    assert "|fmt=paper-llama2|" in auto
    assert auto == HFChatModel(tiny_model_dir, prompt_format="paper-llama2").identity
    assert "|fmt=llama2|" in HFChatModel(tiny_model_dir, prompt_format="llama2").identity
    assert (
        len(
            {
                auto,
                HFChatModel(tiny_model_dir, prompt_format="llama2").identity,
                HFChatModel(tiny_model_dir, prompt_format="paper-vicuna").identity,
            }
        )
        == 3
    )
