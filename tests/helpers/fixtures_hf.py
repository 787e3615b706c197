"""Pytest fixtures for local-model tests: the tiny Llama (built once per session) and a LoRA adapter."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def torch_one_thread():
    """Run torch on one thread while tiny-model tests run: ops this small only lose to thread
    overhead, badly so on a shared machine. The previous setting is restored at session end."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, torch_one_thread: None) -> Path:
    """A freshly built, pre-trained tiny Llama (model + tokenizer via save_pretrained)."""
    pytest.importorskip("transformers")
    from medsafetybench.testing.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), seed=0)


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained LoRA adapter on the tiny model whose random B matrices change its outputs."""
    pytest.importorskip("peft")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(
        r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
    )
    out = tmp_path_factory.mktemp("tiny-adapter")
    get_peft_model(base, config).save_pretrained(out)
    return out
