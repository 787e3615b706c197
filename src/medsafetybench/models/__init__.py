"""Model backends behind one narrow interface (`ChatModel`), and `load_model(spec)` to build one
from a string a user can type: `openai:MODEL[@BASE_URL]`, `hf:PATH[+ADAPTER]`, `vllm:PATH`."""

from .base import ChatModel, ChatRequest, Completion, GenerationConfig, Message, Usage
from .spec import ModelSpec, load_model, parse_spec

__all__ = ["ChatModel", "ChatRequest", "Completion", "GenerationConfig", "Message", "Usage",
           "ModelSpec", "load_model", "parse_spec"]
