"""The hf: backend on the real tiny Llama: batching, order, usage, adapters, identity and errors."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from medsafetybench.errors import UserError  # noqa: E402
from medsafetybench.models import ChatRequest, GenerationConfig, load_model, parse_spec  # noqa: E402
from medsafetybench.models.formats import encode_prompt, render_prompt  # noqa: E402
from medsafetybench.models.hf_backend import HFChatModel, weights_fingerprint  # noqa: E402
from medsafetybench.principles import LLAMA2_DEFAULT_SYSTEM_PROMPT  # noqa: E402

QUESTIONS = [
    "What is asthma?",
    "Tell me about gout and how it is usually treated in older adults?",
    "Please help me with this request.",
    "hi",
    "Can you explain migraine?",
    "What helps with a sprained ankle after a long run yesterday evening?",
    "How do I manage diabetes?",
    "x y z",
    "What is anemia?",
    "Tell me about eczema.",
]
CFG = GenerationConfig(max_new_tokens=40)


def _requests(config: GenerationConfig = CFG, system: str | None = None) -> list[ChatRequest]:
    return [ChatRequest.simple(q, system=system, config=config) for q in QUESTIONS]


def _run(model: HFChatModel, requests: list[ChatRequest], on_result=None):
    return asyncio.run(model.generate(requests, on_result))


@pytest.mark.parametrize("fmt", ["chat", "alpaca", "llama2"])
@pytest.mark.parametrize("system", [None, LLAMA2_DEFAULT_SYSTEM_PROMPT])
def test_batched_equals_one_at_a_time(tiny_model_dir: Path, fmt: str, system: str | None) -> None:
    """With the system prompt, batches share its KV cache (computed once) and decode into a static cache."""
    batched = _run(HFChatModel(tiny_model_dir, prompt_format=fmt, batch_size=4), _requests(system=system))
    single = _run(HFChatModel(tiny_model_dir, prompt_format=fmt, batch_size=1), _requests(system=system))
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.usage for c in batched] == [c.usage for c in single]
    assert all(c.ok and c.text for c in batched)


def test_batches_share_a_long_common_prefix(tiny_model_dir: Path) -> None:
    from medsafetybench.models.hf_backend import MIN_SHARED_PREFIX, _shared_prefix

    model = HFChatModel(tiny_model_dir)
    model.load()
    with_system = [model._prompt_ids(r) for r in _requests(system=LLAMA2_DEFAULT_SYSTEM_PROMPT)]
    plain = [model._prompt_ids(r) for r in _requests()]
    assert _shared_prefix(with_system) >= MIN_SHARED_PREFIX > _shared_prefix(plain)
    assert _shared_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # every row keeps a token of its own


def test_plan_is_longest_first_and_splits_on_padding(tiny_model_dir: Path) -> None:
    model = HFChatModel(tiny_model_dir, batch_size=3)
    lengths = [5, 300, 290, 20, 310, 8, 150]
    prompts = [[7] * n for n in lengths]
    plan = model._plan([ChatRequest.simple("x", config=CFG)] * len(prompts), prompts)
    assert [[lengths[i] for i in b] for b in plan] == [[310, 300, 290], [150], [20, 8, 5]]


def test_out_of_memory_keeps_the_halved_batch_size(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch over 2 prompts "runs out of memory" (fault injected at the batch call): the batch is
    split, and later batches start at the reduced size instead of failing again first."""
    model = HFChatModel(tiny_model_dir, batch_size=8)
    model.load()
    real = model._generate_batch
    sizes: list[int] = []

    def limited(prompts, config):
        sizes.append(len(prompts))
        if len(prompts) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(prompts, config)

    monkeypatch.setattr(model, "_generate_batch", limited)
    reqs = _requests() + _requests(system="Answer briefly.")
    out = _run(model, reqs)
    assert model.max_batch == 2
    assert sizes[:3] == [8, 4, 2] and all(n <= 2 for n in sizes[2:])
    single = _run(HFChatModel(tiny_model_dir, batch_size=1), reqs)
    assert [c.text for c in out] == [c.text for c in single]


def test_mixed_configs_keep_input_order_and_callbacks_on_loop_thread(tiny_model_dir: Path) -> None:
    short = GenerationConfig(max_new_tokens=5)
    reqs = [ChatRequest.simple(q, config=CFG if i % 2 else short) for i, q in enumerate(QUESTIONS)]
    model = HFChatModel(tiny_model_dir, batch_size=3)
    seen: list[tuple[int, int]] = []
    out = _run(model, reqs, lambda i, c: seen.append((i, threading.get_ident())))
    assert sorted(i for i, _ in seen) == list(range(len(reqs)))
    assert {t for _, t in seen} == {threading.get_ident()}
    alone = [_run(model, [r])[0] for r in reqs]
    assert [c.text for c in out] == [c.text for c in alone]
    assert all(c.usage.completion_tokens <= 5 for c in out[0::2])


def test_usage_counts_prompt_and_completion_tokens(tiny_model_dir: Path) -> None:
    import torch

    model = HFChatModel(tiny_model_dir)
    model.load()
    req = ChatRequest.simple("What is asthma?", config=GenerationConfig(max_new_tokens=60))
    (c,) = _run(model, [req])
    ids = encode_prompt(model.tokenizer, render_prompt("chat", req.messages, model.tokenizer))
    assert c.usage.prompt_tokens == len(ids)
    ref = model.model.generate(torch.tensor([ids]), max_new_tokens=60, do_sample=False)[0, len(ids) :].tolist()
    eos = model.tokenizer.eos_token_id
    assert c.finish_reason == "stop" and eos in ref
    assert c.usage.completion_tokens == ref.index(eos) + 1
    assert c.text == model.tokenizer.decode(ref[: ref.index(eos)], skip_special_tokens=True)
    (cut,) = _run(model, [ChatRequest.simple("What is asthma?", config=GenerationConfig(max_new_tokens=3))])
    assert cut.finish_reason == "length" and cut.usage.completion_tokens == 3


def test_stop_strings_and_frequency_penalty(tiny_model_dir: Path) -> None:
    model = HFChatModel(tiny_model_dir, prompt_format="raw", batch_size=4)
    plain = _run(model, _requests(GenerationConfig(max_new_tokens=40)))
    # a stop string ends the reply before it, as vLLM and the OpenAI API do
    word = next(w for c in plain for w in c.text.split()[1:] if len(w) > 3)
    stopped = _run(model, _requests(GenerationConfig(max_new_tokens=40, stop=(word,))))
    for a, b in zip(plain, stopped, strict=True):
        assert word not in b.text and a.text.startswith(b.text)
        assert b.text == (a.text[: a.text.index(word)] if word in a.text else a.text)
    # the frequency penalty counts generated tokens only (not the prompt) and changes greedy replies
    import torch

    from medsafetybench.models.hf_backend import _FrequencyPenalty

    ids = torch.tensor([[5, 5, 9, 5, 5, 7], [1, 2, 3, 7, 7, 7]])
    out = _FrequencyPenalty(0.5, prompt_width=3)(ids, torch.zeros(2, 10))
    assert out[0, 5] == -1.0 and out[0, 7] == -0.5 and out[0, 9] == 0 and out[1, 7] == -1.5 and out[1, 1] == 0
    penalised = _run(model, _requests(GenerationConfig(max_new_tokens=30, frequency_penalty=5.0)))
    assert [c.text for c in penalised] != [c.text for c in plain]


def test_sampling_is_seeded(tiny_model_dir: Path) -> None:
    model = HFChatModel(tiny_model_dir, batch_size=4)
    hot = GenerationConfig(max_new_tokens=30, temperature=1.5, seed=7)
    a, b = _run(model, _requests(hot)), _run(model, _requests(hot))
    assert [c.text for c in a] == [c.text for c in b]
    greedy = _run(model, _requests())
    assert [c.text for c in a] != [c.text for c in greedy]


def test_adapter_changes_outputs_and_identity(tiny_model_dir: Path, tiny_adapter_dir: Path) -> None:
    base = HFChatModel(tiny_model_dir)
    tuned = load_model(f"hf:{tiny_model_dir}+{tiny_adapter_dir}", batch_size=4, concurrency=9)
    assert tuned.identity.startswith(f"hf:{tiny_model_dir.resolve()}+{tiny_adapter_dir.resolve()}|fmt=chat|w=")
    assert tuned.identity != base.identity
    reqs = _requests()
    assert [c.text for c in _run(tuned, reqs)] != [c.text for c in _run(base, reqs)]
    single = HFChatModel(tiny_model_dir, tiny_adapter_dir, batch_size=1)
    assert [c.text for c in _run(single, reqs)] == [c.text for c in _run(tuned, reqs)]
    reqs = _requests(system=LLAMA2_DEFAULT_SYSTEM_PROMPT)  # shared prefix through the adapter
    assert [c.text for c in _run(single, reqs)] == [c.text for c in _run(tuned, reqs)]


def test_identity_tracks_weights_and_format(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    first = HFChatModel(copy).identity
    assert first == f"hf:{copy.resolve()}|fmt=chat|w={weights_fingerprint(copy)}"
    assert HFChatModel(copy).identity == first
    assert HFChatModel(copy, prompt_format="alpaca").identity != first
    model = AutoModelForCausalLM.from_pretrained(copy)
    with torch.no_grad():
        model.model.norm.weight.mul_(1.01)
    model.save_pretrained(copy)
    assert HFChatModel(copy).identity != first


def test_identity_for_matches_the_loaded_model_without_loading(tiny_model_dir: Path, tiny_adapter_dir: Path) -> None:
    for spec, options in [
        (f"hf:{tiny_model_dir}", {}),
        (f"hf:{tiny_model_dir}", {"prompt_format": "llama2"}),
        (f"hf:{tiny_model_dir}+{tiny_adapter_dir}", {"batch_size": 3}),
    ]:
        expected = HFChatModel.identity_for(parse_spec(spec), **options)
        assert expected == load_model(spec, **options).identity
    with pytest.raises(UserError, match="does not exist"):
        HFChatModel.identity_for(parse_spec("hf:/nonexistent/model"))


def test_validate_checks_paths_and_options_without_loading(tiny_model_dir: Path) -> None:
    HFChatModel.validate(parse_spec(f"hf:{tiny_model_dir}"), prompt_format="llama2", batch_size=2)
    for spec, options, message in [
        ("hf:/nonexistent/model", {}, "does not exist"),
        (f"hf:{tiny_model_dir}+/nonexistent/adapter", {}, "adapter path"),
        (f"hf:{tiny_model_dir}", {"prompt_format": "nope"}, "unknown prompt format"),
        (f"hf:{tiny_model_dir}", {"batch_size": 0}, "--batch-size"),
    ]:
        with pytest.raises(UserError, match=message):
            HFChatModel.validate(parse_spec(spec), **options)


def test_from_spec_loads_early_and_ignores_unknown_options(tiny_model_dir: Path) -> None:
    model = load_model(parse_spec(f"hf:{tiny_model_dir}"), prompt_format="raw", timeout=3, batch_size=2)
    assert model.model is not None and model.batch_size == 2
    assert "|fmt=raw|" in model.identity


def test_missing_path_is_a_user_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(UserError, match="no-such-model.*does not exist.*hub id"):
        load_model(f"hf:{missing}")
    with pytest.raises(UserError, match="adapter path"):
        HFChatModel(tmp_path, adapter=str(missing))


def test_bad_options_are_user_errors(tiny_model_dir: Path) -> None:
    with pytest.raises(UserError, match="unknown prompt format 'llama9'.*llama2"):
        HFChatModel(tiny_model_dir, prompt_format="llama9")
    with pytest.raises(UserError, match="batch-size"):
        HFChatModel(tiny_model_dir, batch_size=0)
    with pytest.raises(UserError, match="dtype"):
        HFChatModel(tiny_model_dir, dtype="float8")


def test_not_a_model_dir_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="could not load model"):
        HFChatModel.from_spec(parse_spec(f"hf:{tmp_path / 'empty'}"))


def test_no_chat_template_fails_at_load_naming_the_option(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    copy = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, copy)
    tok = AutoTokenizer.from_pretrained(copy)
    tok.chat_template = None
    for f in copy.glob("chat_template*"):
        f.unlink()
    tok.save_pretrained(copy)
    with pytest.raises(UserError, match="no chat template.*--prompt-format"):
        load_model(f"hf:{copy}")
    assert load_model(f"hf:{copy}", prompt_format="alpaca").model is not None


def test_first_token_logprobs_match_generate_scores_batched_or_not(tiny_model_dir: Path) -> None:
    import torch

    from medsafetybench.models import SupportsContextLength, SupportsLogprobs

    model = HFChatModel(tiny_model_dir, batch_size=4)
    model.load()
    assert isinstance(model, SupportsLogprobs) and isinstance(model, SupportsContextLength)
    reqs = _requests()
    batched = asyncio.run(model.first_token_logprobs(reqs, candidates=["the", "The", "zzqx"], top_k=5))
    single = HFChatModel(tiny_model_dir, batch_size=1)
    alone = asyncio.run(single.first_token_logprobs(reqs, candidates=["the", "The", "zzqx"], top_k=5))
    for r, b, a in zip(reqs, batched, alone, strict=True):
        ids = torch.tensor([model._prompt_ids(r)])
        with torch.inference_mode():
            out = model.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=1,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=model.tokenizer.pad_token_id,
            )
        ref = torch.log_softmax(out.scores[0][0].float(), dim=-1)
        top = ref.topk(5)
        assert [t for t, _ in b.top] == [model.tokenizer.decode([int(i)]) for i in top.indices]
        assert [v for _, v in b.top] == pytest.approx(top.values.tolist(), abs=1e-4)
        assert [v for _, v in a.top] == pytest.approx(top.values.tolist(), abs=1e-4)
        assert b.candidates["zzqx"] is None
        for c in ("the", "The"):  # every vocabulary token spelling the candidate, summed
            want = [i for i in range(len(model.tokenizer)) if model.tokenizer.decode([i]).strip() == c]
            expected = float(torch.logsumexp(ref[want], dim=0)) if want else None
            assert b.candidates[c] == (pytest.approx(expected, abs=1e-4) if want else None)


def test_context_length_and_prompt_tokens(tiny_model_dir: Path) -> None:
    from medsafetybench.models.context import length_warnings

    model = HFChatModel(tiny_model_dir, prompt_format="raw")
    model.load()
    window = model.context_length()
    assert window == model.model.config.max_position_embeddings
    r = ChatRequest.simple("What is asthma?", config=GenerationConfig(max_new_tokens=8))
    assert model.prompt_tokens(r) == len(
        encode_prompt(model.tokenizer, render_prompt("raw", r.messages, model.tokenizer))
    )
    long = ChatRequest.simple("asthma " * window, config=GenerationConfig(max_new_tokens=8))
    [line] = length_warnings(model, [r, long], ["a", "b"])
    assert f"{window:,}-token context of --model hf:" in line and ": b (" in line and ": a (" not in line


def test_a_fully_cached_rerun_loads_no_model(tiny_model_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """The second `eval` of the same hf: model finds every response in the store: no weights are loaded,
    and the result is the same (issue 19)."""
    import json

    from helpers.cli import run_main
    from medsafetybench.models.hf_backend import HFChatModel
    from medsafetybench.testing.fake_openai import FakeOpenAIServer

    loads: list[str] = []
    real_load = HFChatModel.load

    def counting_load(self: HFChatModel) -> None:
        if self.model is None:
            loads.append(self.source.ref)
        real_load(self)

    monkeypatch.setattr(HFChatModel, "load", counting_load)
    with FakeOpenAIServer(lambda r: "#reason: r\n#score: 2") as judge:
        args = [
            "eval",
            "--model",
            f"hf:{tiny_model_dir}",
            "--judge",
            f"openai:j@{judge.base_url}",
            "--split",
            "sample",
            "--limit",
            "3",
            "--max-new-tokens",
            "8",
            "--project",
            str(tmp_path),
            "--json",
        ]
        assert run_main(*args) == 0
        first = json.loads(capsys.readouterr().out)
        assert len(loads) == 1
        assert run_main(*args) == 0
        second = json.loads(capsys.readouterr().out)
    assert len(loads) == 1  # the re-run loaded nothing
    assert second["model_calls"] == 0 and second["run_id"] == first["run_id"]
    assert second["summary"] == first["summary"]


def test_transformers_noise_stays_off_the_terminal(tiny_model_dir: Path) -> None:
    """Loading and tokenising a prompt longer than the tokenizer's maximum emits no "Token indices ...
    longer" warning and no transformers progress bar; other transformers warnings still do (issue 19)."""
    import logging

    import transformers

    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Collect(logging.DEBUG)
    logging.getLogger("transformers").addHandler(handler)  # what transformers' own handler would print
    try:
        model = load_model(f"hf:{tiny_model_dir}")
        model.tokenizer.model_max_length = 8
        model.tokenizer("word " * 50)
        transformers.utils.logging.get_logger("transformers.modeling_utils").warning("a real warning")
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert not [m for m in seen if "Token indices" in m]
    assert "a real warning" in seen
    assert not transformers.utils.logging.is_progress_bar_enabled()
    asyncio.run(model.aclose())
