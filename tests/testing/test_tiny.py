"""The tiny Llama: loads through from_pretrained, is deterministic, and is built once, atomically."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from helpers.paths import REPO

pytest.importorskip("torch")
pytest.importorskip("transformers")

import medsafetybench.testing.tiny as tiny  # noqa: E402


def _digest(d: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(d.iterdir())}


def test_loads_through_from_pretrained_and_speaks_the_corpus(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "llama" and model.config.hidden_size == 64
    assert model.config.num_hidden_layers == 2 and model.config.num_attention_heads == 4
    assert 500 <= len(tok) <= 1100
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Please help me with this request."}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=30, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.startswith("I")  # pre-training taught it the refusal sentences


def test_same_seed_same_files(tmp_path: Path) -> None:
    a = tiny.build_tiny_llama(tmp_path / "a", seed=3, pretrain_steps=3)
    b = tiny.build_tiny_llama(tmp_path / "b", seed=3, pretrain_steps=3)
    c = tiny.build_tiny_llama(tmp_path / "c", seed=4, pretrain_steps=3)
    assert _digest(a) == _digest(b)
    assert _digest(a)["model.safetensors"] != _digest(c)["model.safetensors"]


def test_default_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDSAFETYBENCH_CACHE", str(tmp_path))
    assert tiny.default_tiny_model_dir() == tmp_path / "tiny-llama-v1"
    monkeypatch.delenv("MEDSAFETYBENCH_CACHE")
    assert tiny.default_tiny_model_dir() == Path.home() / ".cache" / "medsafetybench" / "tiny-llama-v1"


@pytest.fixture
def quick_build(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Make ensure_tiny_llama's builds short (3 steps) and record where they happen."""
    real, calls = tiny.build_tiny_llama, []

    def build(out_dir: Path, *, seed: int = 0, **_: object) -> Path:
        calls.append(Path(out_dir))
        return real(out_dir, seed=seed, pretrain_steps=3)

    monkeypatch.setattr(tiny, "build_tiny_llama", build)
    return calls


def test_ensure_builds_once_then_reuses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, quick_build: list[Path]
) -> None:
    monkeypatch.setenv("MEDSAFETYBENCH_CACHE", str(tmp_path))
    first = tiny.ensure_tiny_llama()
    assert first == tmp_path / "tiny-llama-v1" and (first / tiny.MARKER).is_file()
    assert quick_build[0] != first  # built elsewhere, renamed into place
    assert tiny.ensure_tiny_llama() == first and len(quick_build) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-llama-v1"]


def test_half_built_dir_is_rebuilt(tmp_path: Path, quick_build: list[Path]) -> None:
    target = tmp_path / "m"
    target.mkdir()
    (target / "config.json").write_text("{")
    assert tiny.ensure_tiny_llama(target) == target
    assert (target / tiny.MARKER).is_file() and len(quick_build) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_failed_build_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(out_dir: Path, **_: object) -> Path:
        (Path(out_dir) / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny, "build_tiny_llama", boom)
    with pytest.raises(KeyboardInterrupt):
        tiny.ensure_tiny_llama(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_widened_heads_compute_the_same_function(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    wide_dir = tiny.widen_heads(tiny_model_dir, tmp_path / "wide", head_dim=64)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    narrow = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    wide = AutoModelForCausalLM.from_pretrained(wide_dir).eval()
    assert wide.config.head_dim == 64 and wide.model.layers[0].self_attn.q_proj.out_features == 4 * 64
    ids = tok(
        ["<s><|user|>\nWhat is gout, and how is it treated?\n<|assistant|>\n"],
        add_special_tokens=False,
        return_tensors="pt",
    )["input_ids"]
    with torch.inference_mode():
        assert torch.allclose(wide(ids).logits, narrow(ids).logits, atol=1e-5, rtol=0)
        assert torch.equal(
            wide.generate(ids, max_new_tokens=40, do_sample=False),
            narrow.generate(ids, max_new_tokens=40, do_sample=False),
        )
    with pytest.raises(ValueError, match="multiple of the model's 16"):
        tiny.widen_heads(tiny_model_dir, tmp_path / "bad", head_dim=24)


def test_widen_from_the_command_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`python -m medsafetybench.testing.tiny widen` makes the vLLM-servable copy without the Python API, and the
    vllm: error about narrow heads names that command (issue 19)."""
    import json
    import os
    import subprocess
    import sys

    from medsafetybench.models.vllm_backend import start_hint

    src = str(REPO / "src")
    env = {**os.environ, "PYTHONPATH": src}
    dst = tmp_path / "wide"
    r = subprocess.run(
        [sys.executable, "-m", "medsafetybench.testing.tiny", "widen", str(tiny_model_dir), str(dst)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((dst / "config.json").read_text())["head_dim"] == 64 and f"vllm:{dst}" in r.stdout
    again = subprocess.run(
        [sys.executable, "-m", "medsafetybench.testing.tiny", "widen", str(tiny_model_dir), str(dst)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert (
        again.returncode == 2
        and again.stderr.strip() == f"error: {dst} exists and is not empty: give a new folder for the copy"
    )
    hint = start_hint(str(tiny_model_dir), "Head size 16 is not supported (head_dim=16)")
    assert f"python -m medsafetybench.testing.tiny widen {tiny_model_dir} {tiny_model_dir}-wide64" in hint
    assert start_hint(str(tiny_model_dir), "out of memory") == ""
