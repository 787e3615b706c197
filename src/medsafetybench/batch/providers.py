"""Which batch API serves a model: `provider_for(model)` picks one by the model's backend: `openai:` models
(chat format) use the OpenAI Batch API (`openai_batches.py`), `anthropic:` models Message Batches
(`anthropic_batches.py`). The interface and its records are in `records.py`.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..models.base import ChatModel
from .records import BatchProvider, Limits


def provider_for(model: ChatModel, limits: Limits | None = None) -> BatchProvider:
    """The batch provider for an `openai:` (chat format) or `anthropic:` model.

    Raises:
        UserError: the model's backend has no batch API here.
    """
    from ..models.anthropic_backend import AnthropicChatModel
    from ..models.openai_backend import OpenAIChatModel

    if isinstance(model, AnthropicChatModel):
        from .anthropic_batches import AnthropicBatches

        return AnthropicBatches(model, limits)
    if isinstance(model, OpenAIChatModel):
        if model.prompt_format != "chat":
            raise UserError(
                f"--batch: {model.identity} sends text prompts to /v1/completions; batch mode sends "
                "chat requests only (use prompt format chat, or run it without --batch)"
            )
        from .openai_batches import OpenAIBatches

        return OpenAIBatches(model, limits)
    raise UserError(f"--batch: {model.identity} has no batch API (openai: and anthropic: models have)")


def supports_batch(model: Any) -> bool:
    """True for models `provider_for` accepts."""
    try:
        provider_for(model)
    except UserError:
        return False
    return True
