"""Log-likelihood multiple-choice scoring for local transformers models, batched, with the context of
each question encoded once.

Tokenisation follows lm-evaluation-harness (`HFLM._encode_pair`): trailing whitespace of the context
moves to the continuation, `whole = encode(context + continuation)`, `ctx = encode(context)`, and the
continuation tokens are `whole[len(ctx):]`; no special tokens are added (the harness default for causal
models; `add_bos=True` prepends BOS). The score of a choice is the summed log-probability of its
continuation tokens given the context.

`LogLikScorer.score` left-pads a batch of contexts, runs them once with the KV cache on (position ids
from the attention mask), takes each choice's first token log-probability from the last context
position, and only when a choice has more than one token runs the remaining continuation tokens of
all such choices in one more pass over copies of the cached context. For single-token choices (A-D)
that is one forward pass per batch of questions. `score_one_at_a_time` is the reference: one
unpadded forward over context + continuation per choice, exactly the harness' computation; tests
pin that both agree. Contexts longer than the model's window are cut from the left (as the harness).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from .tasks import TARGET_DELIMITER


@dataclass(frozen=True)
class Encoded:
    context: list[int]
    continuations: list[list[int]]


def _forward_cache_kw(model: Any) -> str:
    """transformers renamed `past_key_values` to `cache` in some versions; ask the model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class LogLikScorer:
    """Scores (context, choices) questions with a loaded causal LM and its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 8, add_bos: bool = False,
                 max_length: int | None = None) -> None:
        import torch

        self.torch = torch
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = max(1, batch_size)
        self.add_bos = add_bos
        self.device = next(model.parameters()).device
        cfg = getattr(model, "config", None)
        self.max_length = max_length or getattr(cfg, "max_position_embeddings", None) or 2048
        self._cache_kw = _forward_cache_kw(model)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)

    # --- tokenisation -----------------------------------------------------------------------------------
    def _enc(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, context: str, choices: tuple[str, ...] | list[str]) -> Encoded:
        conts = []
        ctx_ids: list[int] | None = None
        for choice in choices:
            ctx, cont = context, TARGET_DELIMITER + choice
            n_spaces = len(ctx) - len(ctx.rstrip())
            if n_spaces:
                cont, ctx = ctx[-n_spaces:] + cont, ctx[:-n_spaces]
            whole = self._enc(ctx + cont)
            c = self._enc(ctx)
            tail = whole[len(c):] or self._enc(cont)
            conts.append(tail)
            ctx_ids = c
        assert ctx_ids is not None
        if self.add_bos and self.tokenizer.bos_token_id is not None:
            ctx_ids = [self.tokenizer.bos_token_id, *ctx_ids]
        if not ctx_ids:  # the harness scores an empty context after the end-of-text token
            ctx_ids = [self.tokenizer.eos_token_id]
        longest = max(len(c) for c in conts)
        keep = max(1, self.max_length + 1 - longest)
        return Encoded(ctx_ids[-keep:], conts)

    # --- batched scoring --------------------------------------------------------------------------------
    def score(self, questions: list[tuple[str, tuple[str, ...]]]) -> list[list[float]]:
        """Summed continuation log-likelihood per choice, for each (context, choices), in input order."""
        encoded = [self.encode(c, ch) for c, ch in questions]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i].context))
        out: list[list[float]] = [[] for _ in encoded]
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            for i, lls in zip(idx, self._score_safely([encoded[i] for i in idx]), strict=True):
                out[i] = lls
        return out

    def _score_safely(self, batch: list[Encoded]) -> list[list[float]]:
        try:
            return self._score_batch(batch)
        except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError: halve the batch
            if "out of memory" not in str(exc).lower() or len(batch) == 1:
                raise
            if self.device.type == "cuda":
                self.torch.cuda.empty_cache()
            half = len(batch) // 2
            return self._score_safely(batch[:half]) + self._score_safely(batch[half:])

    def _score_batch(self, batch: list[Encoded]) -> list[list[float]]:
        torch = self.torch
        width = max(len(e.context) for e in batch)
        ids = torch.tensor([[self.pad_id] * (width - len(e.context)) + e.context for e in batch], device=self.device)
        mask = torch.tensor([[0] * (width - len(e.context)) + [1] * len(e.context) for e in batch], device=self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        multi = [(b, j) for b, e in enumerate(batch) for j, c in enumerate(e.continuations) if len(c) > 1]
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=bool(multi),
                             logits_to_keep=1)
            first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
            scores = [[float(first[b, c[0]]) for c in e.continuations] for b, e in enumerate(batch)]
            if multi:
                cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
                rows = torch.tensor([b for b, _ in multi], device=self.device)
                cache.reorder_cache(rows)  # one copy of a question's cached context per multi-token choice
                tails = [batch[b].continuations[j] for b, j in multi]
                lc = max(len(t) - 1 for t in tails)
                cont_ids = torch.tensor([t[:-1] + [self.pad_id] * (lc - len(t) + 1) for t in tails], device=self.device)
                cont_mask = torch.tensor([[1] * (len(t) - 1) + [0] * (lc - len(t) + 1) for t in tails], device=self.device)
                full_mask = torch.cat([mask[rows], cont_mask], dim=1)
                start = mask[rows].sum(-1, keepdim=True)
                cont_pos = start + torch.arange(lc, device=self.device)
                out2 = self.model(input_ids=cont_ids, attention_mask=full_mask, position_ids=cont_pos,
                                  use_cache=False, **{self._cache_kw: cache})
                logp = torch.log_softmax(out2.logits.float(), dim=-1)
                for r, ((b, j), t) in enumerate(zip(multi, tails, strict=True)):
                    targets = torch.tensor(t[1:], device=self.device)
                    scores[b][j] += float(logp[r, torch.arange(len(t) - 1, device=self.device), targets].sum())
        return scores

    # --- reference --------------------------------------------------------------------------------------
    def score_one_at_a_time(self, questions: list[tuple[str, tuple[str, ...]]]) -> list[list[float]]:
        """The harness' computation, unbatched: one forward over (context + continuation)[:-1] per choice."""
        torch = self.torch
        out = []
        with torch.inference_mode():
            for context, choices in questions:
                e = self.encode(context, choices)
                lls = []
                for cont in e.continuations:
                    seq = (e.context + cont)[-(self.max_length + 1):]
                    inp = torch.tensor([seq[:-1]], device=self.device)
                    logp = torch.log_softmax(self.model(input_ids=inp).logits[0, -len(cont):].float(), dim=-1)
                    lls.append(float(logp[torch.arange(len(cont)), torch.tensor(cont, device=self.device)].sum()))
                out.append(lls)
        return out


def predictions(choices: tuple[str, ...], lls: list[float]) -> tuple[int, int]:
    """(argmax of log-likelihood, argmax of log-likelihood per character of the choice), as the
    harness' acc and acc_norm (length = len(choice) without the delimiter)."""
    pred = max(range(len(lls)), key=lambda j: lls[j])
    pred_norm = max(range(len(lls)), key=lambda j: lls[j] / max(1, len(choices[j])))
    return pred, pred_norm
