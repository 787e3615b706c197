"""medqa.loglik: batched scoring (one row per question, choice tries, per-row logits) equals the
harness-style one-at-a-time computation with and without BOS; over-long questions are cut per choice as
the harness cuts them; a short fine-tune of the tiny model on a learnable synthetic task raises its
accuracy. (tests/medqa/test_medqa_harness.py checks against lm-evaluation-harness itself.)"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from medsafetybench.medqa.loglik import LogLikScorer, predictions
from medsafetybench.medqa.tasks import LETTERS, medqa_prompt, pubmedqa_prompt

torch = pytest.importorskip("torch")


def _load(path: Path):
    from medsafetybench.models.hf_backend import HFChatModel

    m = HFChatModel(path, prompt_format="raw")
    m.load()
    return m


def _mixed_questions() -> list[tuple[str, tuple[str, ...]]]:
    rng = random.Random(3)
    words = "patient dose fever heart kidney blood pressure infection therapy chronic acute".split()
    qs = []
    for _ in range(11):
        q = " ".join(rng.choice(words) for _ in range(rng.randint(3, 40)))
        opts = tuple(" ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) for _ in range(4))
        qs.append((medqa_prompt(q, opts), LETTERS))
        qs.append((pubmedqa_prompt([q, q[::-1]], "Is it so?"), ("yes", "no", "maybe")))
        qs.append((q + " Answer: ", opts))  # trailing space moves to the continuation; multi-token choices
    return qs


@pytest.mark.parametrize("add_bos", [True, False])
def test_batched_equals_one_at_a_time(tiny_model_dir: Path, add_bos: bool) -> None:
    m = _load(tiny_model_dir)
    qs = _mixed_questions()
    ref = LogLikScorer(m.model, m.tokenizer, batch_size=1, add_bos=add_bos).score_one_at_a_time(qs)
    scorer = LogLikScorer(m.model, m.tokenizer, add_bos=add_bos)
    rows = [r for i, e in enumerate(scorer.encode_many(qs)) for r in scorer._rows(i, e)]
    assert any(r.chain and len(r.tokens) > r.n_context for r in rows)  # shared first tokens, one pass
    assert any(not r.chain for r in rows)  # branching tries: the cached two-pass path
    for bs in (1, 5, 64):
        got = LogLikScorer(m.model, m.tokenizer, batch_size=bs, add_bos=add_bos).score(qs)
        assert [len(r) for r in got] == [len(r) for r in ref]
        for a, b in zip(got, ref, strict=True):
            assert a == pytest.approx(b, abs=2e-4)
        assert [predictions(q[1], r) for q, r in zip(qs, got, strict=True)] == [
            predictions(q[1], r) for q, r in zip(qs, ref, strict=True)
        ]


def test_bos_follows_the_tokenizer(tiny_model_dir: Path) -> None:
    m = _load(tiny_model_dir)
    bos = m.tokenizer.bos_token_id
    with_bos = LogLikScorer(m.model, m.tokenizer).encode("Question: x\nAnswer:", LETTERS)
    without = LogLikScorer(m.model, m.tokenizer, add_bos=False).encode("Question: x\nAnswer:", LETTERS)
    assert with_bos.context == [bos, *without.context] and with_bos.continuations == without.continuations
    # a context that already starts with the BOS text gets no second one (as lm-eval's tok_encode)
    again = LogLikScorer(m.model, m.tokenizer).encode("<s>Question: x\nAnswer:", LETTERS)
    assert again.context.count(bos) == 1


def test_long_context_is_cut_per_choice_from_the_left(tiny_model_dir: Path) -> None:
    m = _load(tiny_model_dir)
    s = LogLikScorer(m.model, m.tokenizer, max_length=32)
    long = "fever " * 200 + "Answer:"
    choices = ("yes", "no", "maybe")
    e = s.encode(long, choices)
    rows = s._rows(0, e)
    assert len(rows) == 3  # each choice cut on its own: (context + continuation)[-33:]
    for r, cont in zip(rows, e.continuations, strict=True):
        assert r.tokens[: r.n_context] + cont == (e.context + cont)[-33:]
    assert s.score([(long, choices)])[0] == pytest.approx(s.score_one_at_a_time([(long, choices)])[0], abs=2e-4)


def test_acc_norm_divides_by_choice_characters() -> None:
    assert predictions(("yes", "maybe"), [-3.0, -4.0]) == (0, 1)  # -1.0/char vs -0.8/char


KINDS = {"colour": 0, "animal": 1, "number": 2, "city": 3}
FILLERS = {
    "colour": ["red", "blue", "green"],
    "animal": ["cat", "dog", "horse"],
    "number": ["one", "two", "nine"],
    "city": ["paris", "rome", "oslo"],
}


def _synthetic(n: int, seed: int) -> list[tuple[str, int]]:
    """Questions whose gold letter follows from the question's topic word (colour -> A, animal -> B, ...)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.choice(list(KINDS))
        opts = tuple(rng.choice(FILLERS[k]) for k in KINDS)  # option of kind k sits at letter KINDS[k]
        out.append((medqa_prompt(f"which {kind} is it?", opts), KINDS[kind]))
    return out


def _accuracy(scorer: LogLikScorer, data: list[tuple[str, int]]) -> float:
    lls = scorer.score([(p, LETTERS) for p, _ in data])
    return sum(predictions(LETTERS, r)[0] == g for r, (_, g) in zip(lls, data, strict=True)) / len(data)


def test_short_finetune_raises_accuracy(tiny_model_dir: Path) -> None:
    m = _load(tiny_model_dir)
    model, tok = m.model, m.tokenizer
    train, test = _synthetic(256, 0), _synthetic(80, 1)
    before = _accuracy(LogLikScorer(model, tok, batch_size=16, add_bos=False), test)
    torch.manual_seed(0)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scorer = LogLikScorer(model, tok, add_bos=False)  # one fixed encoding for training and scoring
    for step in range(60):
        batch = train[(step * 8) % 256 : (step * 8) % 256 + 8]
        loss = 0.0
        for prompt, gold in batch:
            e = scorer.encode(prompt, LETTERS)
            cont = e.continuations[gold]
            ids = torch.tensor([e.context + cont])
            logits = model(input_ids=ids[:, :-1]).logits[0, -len(cont) :]
            loss = loss + torch.nn.functional.cross_entropy(logits, ids[0, -len(cont) :])
        opt.zero_grad()
        (loss / len(batch)).backward()
        opt.step()
    model.eval()
    after = _accuracy(LogLikScorer(model, tok, batch_size=16, add_bos=False), test)
    assert after >= before + 0.3, (before, after)
    assert after >= 0.7
