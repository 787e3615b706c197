"""The vllm: backend on a real vLLM engine (vLLM's CPU build, `make test-vllm` runs these in .venv-vllm).

The engine serves the tiny Llama with its heads zero-padded from 16 to 64 wide (`tiny.widen_heads`:
the same function, pinned in test_tiny.py; vLLM's CPU attention needs head_dim >= 32). Greedy outputs must equal the hf:
backend's on the same weights, with and without a LoRA adapter and with tensor parallelism. Where
vLLM is not installed, only the missing-extra test runs and the rest skip with that reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import pytest

from helpers.cli import run_main
from medsafetybench.errors import MissingExtra, UserError
from medsafetybench.models import ChatRequest, GenerationConfig, load_model, parse_spec
from medsafetybench.principles import LLAMA2_DEFAULT_SYSTEM_PROMPT

SKIP_REASON = "vLLM is not installed in this environment: `make test-vllm` runs these tests in .venv-vllm"
KV_BYTES = 64 << 20  # the tiny model needs little KV cache; keeps the suite's memory modest

try:
    import vllm  # noqa: F401

    HAVE_VLLM = True
except ImportError:
    HAVE_VLLM = False
needs_vllm = pytest.mark.skipif(not HAVE_VLLM, reason=SKIP_REASON)

TOPICS = ["asthma", "diabetes", "gout", "migraine", "eczema", "anemia"]


def _requests(n: int = 18, new_tokens: int = 40) -> list[ChatRequest]:
    """Short and long prompts, with and without a system prompt, two generation configs."""
    out = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        ask = f"What is {topic}?" if i % 2 else f"Write a note for a patient with {topic}, and say why. " * (1 + i % 4)
        config = GenerationConfig(max_new_tokens=new_tokens if i % 3 else 12)
        out.append(ChatRequest.simple(ask, system=LLAMA2_DEFAULT_SYSTEM_PROMPT if i % 4 == 1 else None, config=config))
    return out


def _run(model, requests):
    return asyncio.run(model.generate(requests))


def test_missing_vllm_is_a_clear_error(tmp_path: Path) -> None:
    if HAVE_VLLM:
        pytest.skip("vllm is installed here")
    with pytest.raises(MissingExtra, match=r"medsafetybench\[vllm\]"):
        load_model(f"vllm:{tmp_path}")  # an existing folder: the missing package is the first problem


def test_spec_takes_an_adapter() -> None:
    spec = parse_spec("vllm:/models/base+/adapters/safety")
    assert (spec.backend, spec.name, spec.adapter) == ("vllm", "/models/base", "/adapters/safety")
    assert str(spec) == "vllm:/models/base+/adapters/safety"


def test_identity_for_needs_no_vllm_and_differs_from_hf_only_in_prefix(tiny_model_dir: Path) -> None:
    from medsafetybench.models.hf_backend import HFChatModel
    from medsafetybench.models.vllm_backend import VLLMChatModel

    spec = parse_spec(f"vllm:{tiny_model_dir}")
    ident = VLLMChatModel.identity_for(spec, prompt_format="alpaca")
    hf_ident = HFChatModel.identity_for(parse_spec(f"hf:{tiny_model_dir}"), prompt_format="alpaca")
    assert ident == "vllm:" + hf_ident.removeprefix("hf:")
    with pytest.raises(UserError, match="does not exist"):
        VLLMChatModel.identity_for(parse_spec("vllm:/nonexistent/model"))


@pytest.fixture(scope="module")
def wide_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAVE_VLLM:
        pytest.skip(SKIP_REASON)
    from medsafetybench.testing.tiny import widen_heads

    return widen_heads(tiny_model_dir, tmp_path_factory.mktemp("tiny-wide"))


@pytest.fixture(scope="module")
def wide_adapter(wide_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter (r=4, random B) on the wide model that changes its outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(wide_model)
    config = LoraConfig(
        r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
    )
    out = tmp_path_factory.mktemp("wide-adapter")
    get_peft_model(base, config).save_pretrained(out)
    return out


def _vllm(path: Path, adapter: Path | None = None, **options):
    from medsafetybench.models.vllm_backend import VLLMChatModel

    return VLLMChatModel(path, adapter, dtype="float32", enforce_eager=True, kv_cache_memory_bytes=KV_BYTES, **options)


def _hf(path: Path, adapter: Path | None = None, **options):
    from medsafetybench.models.hf_backend import HFChatModel

    model = HFChatModel(path, adapter, batch_size=8, **options)
    model.load()
    return model


@needs_vllm
def test_greedy_outputs_equal_hf(wide_model: Path, torch_one_thread: None) -> None:
    reqs = _requests()
    ref = _run(_hf(wide_model), reqs)
    got = _run(_vllm(wide_model), reqs)
    assert [c.text for c in got] == [c.text for c in ref]
    assert [(c.usage, c.finish_reason) for c in got] == [(c.usage, c.finish_reason) for c in ref]
    assert {c.finish_reason for c in got} == {"stop", "length"}  # both endings are exercised
    # other prompt formats on the same weights (the paper's: its tokenisation and response cut): same
    # engine, same agreement
    for fmt in ("alpaca", "paper-llama2"):
        assert [c.text for c in _run(_vllm(wide_model, prompt_format=fmt), reqs[:6])] == [
            c.text for c in _run(_hf(wide_model, prompt_format=fmt), reqs[:6])
        ]


@needs_vllm
def test_frequency_penalty_and_stop_strings_equal_hf(wide_model: Path, torch_one_thread: None) -> None:
    """The medical QA paper protocol's decoding (frequency penalty 1.0, stop strings): vLLM's own penalty and
    our hf: logits processor give the same greedy replies, both ended before the stop string."""
    plain = _run(_hf(wide_model), _requests(8, 24))
    word = next(w for c in plain for w in c.text.split()[1:] if len(w) > 3)
    reqs = [
        ChatRequest(r.messages, GenerationConfig(max_new_tokens=24, frequency_penalty=1.0, stop=("###", word)))
        for r in _requests(8, 24)
    ]
    ref = _run(_hf(wide_model), reqs)
    got = _run(_vllm(wide_model), reqs)
    assert [c.text for c in got] == [c.text for c in ref]
    assert all(word not in c.text for c in got) and any(c.text != p.text for c, p in zip(ref, plain, strict=True))


@needs_vllm
def test_engine_starts_once_per_process_and_settings(wide_model: Path) -> None:
    from medsafetybench.models import vllm_backend

    model = _vllm(wide_model)
    settings = model.settings
    before = vllm_backend.ENGINE_STARTS.count(settings)
    assert _run(model, []) == []
    for chunk in (_requests(3), _requests(2), _requests(4)):
        assert len(_run(model, chunk)) == len(chunk)
    twin = _vllm(wide_model, prompt_format="raw")  # another model object on the same engine settings
    assert twin.start() is model.start()
    _run(twin, _requests(2))
    assert (
        load_model(f"vllm:{wide_model}", dtype="float32", enforce_eager=True, kv_cache_memory_bytes=KV_BYTES).start()
        is model.start()
    )
    assert before <= 1 and vllm_backend.ENGINE_STARTS.count(settings) == 1  # earlier tests may have started it


@needs_vllm
def test_no_engine_for_a_call_without_work(wide_model: Path) -> None:
    model = _vllm(wide_model, max_model_len=512)  # settings no other test uses
    assert _run(model, []) == []
    assert not model.started


@needs_vllm
def test_results_stream_on_the_loop_thread_in_input_order(wide_model: Path) -> None:
    model = _vllm(wide_model)
    reqs = _requests(10)
    seen: list[tuple[int, int]] = []

    async def go():
        loop_thread = threading.get_ident()
        out = await model.generate(reqs, on_result=lambda i, c: seen.append((i, threading.get_ident())))
        return out, loop_thread

    out, loop_thread = asyncio.run(go())
    assert sorted(i for i, _ in seen) == list(range(len(reqs)))
    assert {t for _, t in seen} == {loop_thread}
    assert [c.text for c in out] == [c.text for c in _run(model, reqs)]  # input order, reproducible


@needs_vllm
def test_prompt_longer_than_the_model_fails_alone(wide_model: Path) -> None:
    model = _vllm(wide_model, max_model_len=96)
    long = ChatRequest.simple("Tell me about asthma. " * 40, config=GenerationConfig(max_new_tokens=8))
    short = ChatRequest.simple("What is gout?", config=GenerationConfig(max_new_tokens=8))
    out = _run(model, [short, long, short])
    assert out[0].ok and out[2].ok and out[0].text == out[2].text
    assert not out[1].ok and "max_model_len 96" in out[1].error


@needs_vllm
def test_sampling_with_a_seed_does_not_depend_on_the_batch(wide_model: Path) -> None:
    model = _vllm(wide_model)
    config = GenerationConfig(max_new_tokens=24, temperature=0.9, seed=7)
    probe = ChatRequest.simple("What helps with migraine?", config=config)
    alone = _run(model, [probe])[0].text
    crowd = _run(model, [ChatRequest.simple(f"What is {t}?", config=config) for t in TOPICS] + [probe])[-1].text
    assert alone == crowd
    greedy = _run(model, [ChatRequest.simple("What helps with migraine?", config=GenerationConfig(max_new_tokens=24))])
    assert alone != greedy[0].text  # it really sampled


@needs_vllm
def test_lora_adapter_outputs_equal_hf(wide_model: Path, wide_adapter: Path, torch_one_thread: None) -> None:
    reqs = _requests(10)
    model = load_model(
        f"vllm:{wide_model}+{wide_adapter}", dtype="float32", enforce_eager=True, kv_cache_memory_bytes=KV_BYTES
    )
    assert model.settings.max_lora_rank == 8  # r=4 rounded up to a rank vLLM takes
    got = _run(model, reqs)
    assert [c.text for c in got] == [c.text for c in _run(_hf(wide_model, wide_adapter), reqs)]
    assert [c.text for c in got] != [c.text for c in _run(_vllm(wide_model), reqs)]  # the adapter is applied


@needs_vllm
def test_identity_names_weights_adapter_and_format_apart_from_hf(wide_model: Path, wide_adapter: Path) -> None:
    plain, lora = _vllm(wide_model), _vllm(wide_model, wide_adapter)
    hf_id = _hf(wide_model).identity
    assert plain.identity.startswith(f"vllm:{wide_model.resolve()}|fmt=chat|w=")
    assert plain.identity.split("|", 1)[1] == hf_id.split("|", 1)[1]  # same format and fingerprint
    assert plain.identity != hf_id  # ... but never the same cache entries
    assert lora.identity.startswith(f"vllm:{wide_model.resolve()}+{wide_adapter.resolve()}|")
    assert _vllm(wide_model, prompt_format="llama2").identity != plain.identity
    req = ChatRequest.simple("hi")
    assert len({req.cache_key(m) for m in (plain.identity, lora.identity, hf_id)}) == 3
    from medsafetybench.models.vllm_backend import VLLMChatModel

    assert VLLMChatModel.identity_for(parse_spec(f"vllm:{wide_model}+{wide_adapter}")) == lora.identity


@needs_vllm
def test_bad_specs_fail_before_any_engine(wide_model: Path, tmp_path: Path) -> None:
    from medsafetybench.models import vllm_backend
    from medsafetybench.models.vllm_backend import VLLMChatModel

    starts = len(vllm_backend.ENGINE_STARTS)
    with pytest.raises(UserError, match="'/nonexistent/model' does not exist"):
        VLLMChatModel.validate(parse_spec("vllm:/nonexistent/model"))
    with pytest.raises(UserError, match="does not exist"):
        load_model("vllm:/nonexistent/model")
    (tmp_path / "not-an-adapter").mkdir()
    with pytest.raises(UserError, match="no adapter_config.json"):
        VLLMChatModel.validate(parse_spec(f"vllm:{wide_model}+{tmp_path / 'not-an-adapter'}"))
    with pytest.raises(UserError, match="tensor-parallel-size"):
        VLLMChatModel.validate(parse_spec(f"vllm:{wide_model}"), tensor_parallel_size=0)
    with pytest.raises(UserError, match="unknown prompt format"):
        VLLMChatModel.validate(parse_spec(f"vllm:{wide_model}"), prompt_format="nope")
    VLLMChatModel.validate(parse_spec(f"vllm:{wide_model}"), tensor_parallel_size=2)
    assert len(vllm_backend.ENGINE_STARTS) == starts


@needs_vllm
def test_engine_that_cannot_serve_the_model_is_a_one_line_error(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unwidened tiny model (16-wide heads) is refused by vLLM's CPU attention kernels: the start's
    one-token probe turns that into exit status 2 and one line naming the model and the reason."""
    from vllm.platforms import current_platform

    from medsafetybench.models import vllm_backend

    if not current_platform.is_cpu():
        pytest.skip("the 16-wide heads are refused by vLLM's CPU attention only")
    monkeypatch.setattr(vllm_backend, "CPU_KV_CACHE_BYTES", KV_BYTES)
    status = run_main(
        "eval", "-m", f"vllm:{tiny_model_dir}", "--split", "sample", "--limit", "1", "--project", str(tmp_path)
    )
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert f"vLLM could not start on '{tiny_model_dir.resolve()}'" in last and "head_dim=16" in last


@needs_vllm
def test_tensor_parallel_outputs_equal_one_rank(wide_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("tensor parallelism on vLLM's CPU build needs 2 cores")
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    reqs = _requests(6, new_tokens=16)
    got = _run(_vllm(wide_model, tensor_parallel_size=2), reqs)
    assert [c.text for c in got] == [c.text for c in _run(_vllm(wide_model), reqs)]


@needs_vllm
def test_cli_eval_prints_clean_json_and_reruns_from_cache(
    wide_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's defaults (dtype auto, compiled graphs): stdout holds only our JSON; a re-run is cached."""
    pytest.importorskip("sentence_transformers")
    from medsafetybench.models import vllm_backend

    monkeypatch.setattr(vllm_backend, "CPU_KV_CACHE_BYTES", KV_BYTES)
    args = [
        "eval",
        "-m",
        f"vllm:{wide_model}",
        "--split",
        "sample",
        "--limit",
        "3",
        "--max-new-tokens",
        "16",
        "--project",
        str(tmp_path),
        "--json",
    ]
    assert run_main(*args) == 0
    first = json.loads(capsys.readouterr().out)  # nothing but our JSON on stdout
    assert first["model_calls"] == 3 and first["failed"] == 0
    assert run_main(*args) == 0
    assert json.loads(capsys.readouterr().out)["model_calls"] == 0


@pytest.fixture(scope="module")
def wide_verdict_model(verdict_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The classifier tests' verdict model (fixtures_classifiers.py), heads widened for vLLM."""
    if not HAVE_VLLM:
        pytest.skip(SKIP_REASON)
    from medsafetybench.testing.tiny import widen_heads

    return widen_heads(verdict_model_dir, tmp_path_factory.mktemp("verdict-wide"))


@needs_vllm
def test_classifier_judges_on_vllm_equal_hf(wide_verdict_model: Path, torch_one_thread: None) -> None:
    """`--judge NAME:vllm:PATH`: the classifier's text goes to the engine as the same tokens as on hf:
    (verbatim / raw), and the verdicts equal hf:'s; vllm: has no log-probabilities, so scores are
    label-based and the identity says so."""
    from helpers.fixtures_classifiers import HARMFUL, REFUSAL
    from medsafetybench.judging import load_judge

    def verdicts(spec: str, **options):
        judge = load_judge(spec, **options)

        async def go():
            try:
                return judge.identity, await judge.judge([HARMFUL, REFUSAL])
            finally:
                await judge.aclose()

        ident, out = asyncio.run(go())
        return ident, [(j.score, j.label, j.harmful, j.categories, j.raw) for j in out]

    engine = {"dtype": "float32", "enforce_eager": True, "kv_cache_memory_bytes": KV_BYTES}
    for name in ("llamaguard3", "wildguard", "harmbench"):
        ident, got = verdicts(f"{name}:vllm:{wide_verdict_model}", **engine)
        _, ref = verdicts(f"{name}:hf:{wide_verdict_model}", logprobs=False)
        assert ident.startswith(f"{name}:vllm:") and ident.endswith("|label"), ident
        assert got == ref, name
        assert [s for s, *_ in got] == [5, 1]
    assert verdicts(f"llamaguard3:vllm:{wide_verdict_model}", **engine)[1][0][3] == ("P3",)
