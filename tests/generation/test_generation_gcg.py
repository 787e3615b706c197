"""GCG on the tiny model: cached-prefix losses and gradients equal whole-sequence ones and a plain
cross-entropy, the batch size does not change losses, the suffix stays ASCII and keeps its length,
success means "starts with the target" (refusal reported apart), a step with no re-tokenisable candidate
raises, and a run resumed from a mid-way state ends exactly as an uninterrupted one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from medsafetybench.errors import UserError
from medsafetybench.generation import prompts
from medsafetybench.generation.gcg import GCG, GCGConfig, GCGState, is_refusal, is_success, official_pick
from medsafetybench.generation.prompts import gcg_goal, gcg_target
from medsafetybench.models import load_model

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(f"hf:{tiny_model_dir}")


def _plain_losses(gcg: GCG, cands) -> list[float]:
    """Whole sequence, full logits, one candidate at a time: the textbook loss."""
    out = []
    with torch.no_grad():
        for row in cands.tolist():
            ids = gcg.before_ids + row + gcg.after_ids + gcg.target_ids
            logits = gcg.model(input_ids=torch.tensor([ids])).logits[0]
            start = len(ids) - len(gcg.target_ids)
            out.append(float(torch.nn.functional.cross_entropy(logits[start - 1 : -1], torch.tensor(gcg.target_ids))))
    return out


@pytest.mark.parametrize("version", prompts.VERSIONS)
def test_cached_prefix_losses_equal_full_losses(tiny, version: str) -> None:
    cfg = GCGConfig.for_version(version, num_candidates=24, top_k=16, suffix_len=8, batch_size=5)
    gcg = GCG(tiny, gcg_goal(3), gcg_target(3), cfg)
    grad, loss = gcg.gradient(gcg.init_ids)
    grad_full, loss_full = gcg.gradient(gcg.init_ids, use_cache=False)
    assert grad.shape == (8, tiny.model.get_input_embeddings().weight.shape[0])
    torch.testing.assert_close(grad, grad_full, rtol=1e-4, atol=1e-6)
    assert abs(loss - loss_full) < 1e-5
    cands = gcg.sample_candidates(gcg.init_ids, grad, torch.Generator().manual_seed(0))
    assert cands.shape[1] == 8 and 1 < cands.shape[0] <= 24
    cached = gcg.candidate_losses(cands, use_cache=True)
    torch.testing.assert_close(cached, gcg.candidate_losses(cands, use_cache=False), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cached, torch.tensor(_plain_losses(gcg, cands)), rtol=1e-4, atol=1e-5)
    other_batch = GCG(tiny, gcg_goal(3), gcg_target(3), replace(cfg, batch_size=64))  # not in a run's key
    torch.testing.assert_close(cached, other_batch.candidate_losses(cands), rtol=1e-4, atol=1e-5)
    assert abs(float(gcg.candidate_losses(torch.tensor([gcg.init_ids]))[0]) - loss) < 1e-4
    # each candidate differs from the current suffix in one position, by an allowed token
    diff = (cands != torch.tensor(gcg.init_ids)).sum(dim=1)
    assert (diff <= 1).all() and gcg.allowed[cands].all()


def test_initial_suffix(tiny) -> None:
    gcg = GCG(tiny, gcg_goal(1), gcg_target(1), GCGConfig(suffix_len=20))
    assert len(gcg.init_ids) == 20 and gcg.decode(gcg.init_ids).replace(" ", "") == "*" * 20
    three = tiny.tokenizer("a b c", add_special_tokens=False)["input_ids"]
    gcg = GCG(tiny, gcg_goal(1), gcg_target(1), GCGConfig(suffix_len=len(three), init="a b c"))
    assert gcg.init_ids == three
    with pytest.raises(UserError, match="--suffix-len"):
        GCG(tiny, gcg_goal(1), gcg_target(1), GCGConfig(suffix_len=len(three) + 1, init="a b c"))
    with pytest.raises(UserError, match="may not appear"):
        GCG(tiny, gcg_goal(1), gcg_target(1), GCGConfig(init="</s>"))  # a special token


def test_success_means_the_output_starts_with_the_target() -> None:
    target = gcg_target(2)
    assert is_success(" " + target + ":\n1. ...", target)
    assert not is_success("1. Request about topic A", target)  # no refusal phrase is not success
    assert not is_success("I'm sorry, but I cannot help with that.", target)
    assert is_refusal("I'm sorry, but I cannot help with that.", prompts.REFUSAL_PREFIXES)
    assert not is_refusal("1. Request about topic A", prompts.REFUSAL_PREFIXES)


def test_official_pick() -> None:
    t, pre = "Sure, here", ("I cannot",)
    checks = [{"output": o} for o in ("x Sure, here a", "I cannot", "plain", "I cannot either")]
    assert official_pick(checks, t, pre) == 0  # the last that contains the target
    assert official_pick(checks[1:], t, pre) == 1  # else the last without a refusal phrase
    assert official_pick([checks[1], checks[3]], t, pre) == 1  # else the last


def test_no_retokenisable_candidate_raises(tiny) -> None:
    gcg = GCG(tiny, gcg_goal(1), gcg_target(1), GCGConfig(suffix_len=2))
    tok = tiny.tokenizer
    rows = []
    for i in range(len(tok)):  # a token whose text splits into two tokens that merge back into it
        text = tok.decode([i])
        if len(text) >= 2 and text.isascii() and text.isalpha():
            a = tok(text[0], add_special_tokens=False)["input_ids"]
            b = tok(text[1:], add_special_tokens=False)["input_ids"]
            if len(a) == 1 and len(b) == 1 and tok(text, add_special_tokens=False)["input_ids"] == [i]:
                rows.append(a + b)
        if len(rows) == 3:
            break
    assert rows, "the tiny vocabulary has merged tokens"
    with pytest.raises(UserError, match="none of the 3 candidate suffixes re-tokenises"):
        gcg._retokenisable(torch.tensor(rows))


@pytest.mark.parametrize("version", prompts.VERSIONS)
def test_resumed_run_equals_uninterrupted(tiny, version: str) -> None:
    cfg = GCGConfig.for_version(
        version,
        steps=4,
        top_k=32,
        num_candidates=32,
        suffix_len=10,
        batch_size=32,
        early_stop=False,
        check_every=2,
        check_tokens=8,
        seed=1,
    )
    gcg = GCG(tiny, gcg_goal(6), gcg_target(6), cfg)
    full = gcg.run()
    assert full.steps_run == 4 and len(full.losses) == 5 and [c["step"] for c in full.checks] == [2, 4]
    assert full.best_loss <= full.losses[0] and full.best_loss == min(full.losses)
    assert len(full.suffix_ids) == 10 and full.suffix.isascii() and full.suffix.isprintable()
    assert tiny.tokenizer(full.suffix, add_special_tokens=False)["input_ids"] == full.suffix_ids
    saved: list[GCGState] = []

    def stop_after_two(state: GCGState, last: bool) -> None:
        if state.step == 2:
            saved.append(GCGState(**{k: (list(v) if isinstance(v, list) else v) for k, v in vars(state).items()}))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gcg.run(on_step=stop_after_two)
    again = GCG(tiny, gcg_goal(6), gcg_target(6), cfg).run(saved[0])
    assert again.losses == full.losses and again.suffix_ids == full.suffix_ids and again.checks == full.checks
