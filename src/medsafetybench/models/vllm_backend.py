"""The `vllm:` backend: a vLLM engine (`vllm.LLM`) behind the `ChatModel` interface.

For throughput on GPUs: vLLM schedules all prompts with continuous batching and can shard a model
across GPUs (`tensor_parallel_size`). Prompts are rendered with the same prompt formats as the `hf:`
backend and handed over as token ids (so no prompt gets a doubled `<s>`; paper formats get the paper's
response cut applied to vLLM's detokenised completion); requests that share a
`GenerationConfig` go to the engine in one call, which runs in a worker thread; `on_result` fires on
the event-loop thread. vLLM is an optional extra, imported only when this backend is built. LoRA
adapters are not taken here: merge them first or use `hf:BASE+ADAPTER`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..errors import MissingExtra, UserError
from .base import ChatRequest, Completion, GenerationConfig, ResultCallback, Usage
from .formats import check_format, encode_prompt, finish_reply, render_prompt, resolve_format
from .hf_backend import _Source
from .spec import ModelSpec


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise MissingExtra("vllm", "vllm", "The vllm: model backend") from exc
    return vllm


class VLLMChatModel:
    """A vLLM engine; `identity` is `vllm:PATH|fmt=FORMAT|w=FINGERPRINT` like the hf: backend's."""

    def __init__(self, path: str, *, prompt_format: str = "chat", tensor_parallel_size: int = 1,
                 dtype: str = "auto", gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None) -> None:
        self._vllm = _import_vllm()
        if tensor_parallel_size < 1:
            raise UserError(f"--tensor-parallel-size must be at least 1 (got {tensor_parallel_size})")
        self.prompt_format = check_format(prompt_format)
        self.source = _Source.resolve(str(path), "model path")
        self.prompt_format = resolve_format(self.prompt_format, self.source.ref, self.source.local)
        try:
            self.llm = self._vllm.LLM(model=self.source.ref, tensor_parallel_size=tensor_parallel_size,
                                      dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                                      max_model_len=max_model_len)
        except (OSError, ValueError) as exc:
            raise UserError(f"vLLM could not load '{self.source.ref}': {str(exc).splitlines()[0]}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.identity = f"vllm:{self.source.ref}|fmt={self.prompt_format}|w={self.source.fingerprint()}"
        render_prompt(self.prompt_format, ChatRequest.simple("ping").messages, self.tokenizer)

    @classmethod
    def from_spec(cls, spec: ModelSpec, **options: Any) -> VLLMChatModel:
        """Build from a parsed `vllm:` spec; options it does not know are ignored."""
        keys = ("prompt_format", "tensor_parallel_size", "dtype", "gpu_memory_utilization", "max_model_len")
        return cls(spec.name, **{k: options[k] for k in keys if options.get(k) is not None})

    def _params(self, config: GenerationConfig) -> Any:
        return self._vllm.SamplingParams(max_tokens=config.max_new_tokens, temperature=config.temperature,
                                         top_p=config.top_p if config.temperature > 0 else 1.0,
                                         seed=config.seed)

    async def generate(self, requests: Sequence[ChatRequest],
                       on_result: ResultCallback | None = None) -> list[Completion]:
        texts = [render_prompt(self.prompt_format, r.messages, self.tokenizer) for r in requests]
        prompts = [encode_prompt(self.tokenizer, t, self.prompt_format) for t in texts]
        groups: dict[GenerationConfig, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.config, []).append(i)
        results: list[Completion | None] = [None] * len(requests)
        for config, idx in groups.items():
            inputs = [{"prompt_token_ids": prompts[i]} for i in idx]
            outs = await asyncio.to_thread(self.llm.generate, inputs, self._params(config), use_tqdm=False)
            for i, out in zip(idx, outs, strict=True):
                gen = out.outputs[0]
                completion = Completion(text=finish_reply(self.prompt_format, texts[i], gen.text),
                                        usage=Usage(len(prompts[i]), len(gen.token_ids)),
                                        finish_reason=gen.finish_reason)
                results[i] = completion
                if on_result is not None:
                    on_result(i, completion)
        return [r for r in results if r is not None]

    async def aclose(self) -> None:
        self.llm = None
