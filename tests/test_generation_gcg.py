"""GCG on the tiny model: the loss falls, the suffix stays ASCII and keeps its length, and candidate
losses with the cached prefix equal those computed over the whole sequence."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsafetybench.generation.candidates import CandidateStore
from medsafetybench.generation.gcg import GCG, GCGConfig, generate_by_gcg, is_success
from medsafetybench.generation.prompts import gcg_goal, gcg_target
from medsafetybench.models import load_model
from medsafetybench.store import Store

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(f"hf:{tiny_model_dir}")


def test_cached_prefix_losses_equal_full_losses(tiny) -> None:
    gcg = GCG(tiny, gcg_goal(3), gcg_target(3), GCGConfig(num_candidates=24, top_k=16, suffix_len=8, batch_size=5))
    grad, loss = gcg.gradient(gcg.init_ids)
    assert grad.shape == (8, tiny.model.get_input_embeddings().weight.shape[0])
    cands = gcg.sample_candidates(gcg.init_ids, grad, torch.Generator().manual_seed(0))
    assert cands.shape[1] == 8 and 1 < cands.shape[0] <= 24
    cached = gcg.candidate_losses(cands, use_cache=True)
    full = gcg.candidate_losses(cands, use_cache=False)
    torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-5)
    assert abs(float(gcg.candidate_losses(torch.tensor([gcg.init_ids]))[0]) - loss) < 1e-4  # same loss as the gradient pass
    # each candidate differs from the current suffix in one position, by an allowed token
    diff = (cands != torch.tensor(gcg.init_ids)).sum(dim=1)
    assert (diff <= 1).all() and gcg.allowed[cands].all()


def test_gcg_lowers_the_loss_and_keeps_an_ascii_suffix(tiny, tmp_path: Path) -> None:
    cfg = GCGConfig(steps=4, top_k=32, num_candidates=32, suffix_len=10, batch_size=32, early_stop=False,
                    check_every=4, check_tokens=8, seed=1)
    with Store(tmp_path / "db.sqlite") as store:
        res, report = generate_by_gcg(store, tiny, 6, cfg, max_new_tokens=24)
        assert res.steps_run == 4 and len(res.losses) == 5
        assert res.best_loss < res.losses[0]
        assert len(res.suffix_ids) == 10 and res.suffix.isascii() and res.suffix.isprintable()
        assert tiny.tokenizer(res.suffix, add_special_tokens=False)["input_ids"] == res.suffix_ids
        assert report.calls == 1 and report.replies == 1
        for c in CandidateStore(store).list():
            assert c.method == "gcg" and c.suffix == res.suffix
        again, report2 = generate_by_gcg(store, tiny, 6, cfg, max_new_tokens=24)  # stored: not optimised again
        assert again.suffix_ids == res.suffix_ids and report2.calls == 0


def test_initial_suffix_is_stars(tiny) -> None:
    gcg = GCG(tiny, gcg_goal(1), gcg_target(1), GCGConfig(suffix_len=20))
    assert len(gcg.init_ids) == 20 and gcg.decode(gcg.init_ids).replace(" ", "") == "*" * 20


def test_success_rule() -> None:
    target = gcg_target(2)
    assert is_success(target + ":\n1. ...", target)
    assert is_success("1. Request about topic A", target)
    assert not is_success("I'm sorry, but I cannot help with that.", target)
