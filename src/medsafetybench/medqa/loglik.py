"""Log-likelihood multiple-choice scoring for local transformers models, as lm-evaluation-harness
computes it, with every question's context run once for all its choices.

Tokenisation follows the harness (`HFLM._encode_pair`, `tok_encode`): trailing whitespace of the context
moves to the continuation, `whole = encode(context + continuation)`, `ctx = encode(context)`, and the
continuation tokens are `whole[len(ctx):]`. With `add_bos=True` (the harness default, `add_bos_token`
unset) both are encoded with the tokenizer's own special tokens, i.e. a BOS where the tokenizer adds
one (Llama and most causal LMs); with `add_bos=False` none (the harness' `add_bos_token=False`, and this
project's behaviour before 0.2). A string that already starts with the BOS text gets none, as in the
harness. The score of a choice is the summed log-probability of its continuation tokens.

Speed (bench/medqa_loglik.py): the strings of a call are tokenised in one tokenizer call (one context
and one context+choice string per choice, where the harness encodes both per choice); each question
becomes *one* row: its context followed by the trie of its choices' continuation prefixes (choices
" B", " C" that start with the same token share it). When the trie is a chain (single-token choices,
or choices that differ only in their last token) the row runs once under the plain causal mask;
otherwise the contexts run once with the KV cache kept, and all trie tokens of the batch run in a
second, small pass in which each sees its own row's context and its ancestors (a 4D mask, position
ids by depth). Rows are sorted by length and right-padded, and logits are computed only at the
positions whose next-token distribution is read (`logits_to_keep` per row). A question whose context
plus a continuation exceeds the model window is scored per choice, each cut from the left exactly as
the harness cuts it.

`score_one_at_a_time` is the harness' computation without batching (one forward per choice over
`(context + continuation)[-(max_length+1):][:-1]`); tests pin that both agree, and
tests/medqa/test_medqa_harness.py that both agree with lm-eval itself.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from .tasks import TARGET_DELIMITER


@dataclass(frozen=True)
class Encoded:
    """One question, tokenised: its context and each choice's continuation tokens."""

    context: list[int]
    continuations: list[list[int]]


@dataclass
class _Row:
    """One forward row: tokens, optional tree layout, and the log-probabilities to read from it."""

    question: int
    tokens: list[int]
    parents: list[int] = field(default_factory=list)  # row index of each trie token's parent
    n_context: int = 0
    depth: list[int] = field(default_factory=list)
    targets: list[tuple[int, int, int]] = field(default_factory=list)  # (choice, row position, token)
    chain: bool = True  # each trie token follows its parent: the plain causal mask serves


def _accepts(model: Any, name: str) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return name in inspect.signature(base.forward).parameters


class LogLikScorer:
    """Scores (context, choices) questions with a loaded causal LM and its tokenizer."""

    def __init__(
        self, model: Any, tokenizer: Any, *, batch_size: int = 16, add_bos: bool = True, max_length: int | None = None
    ) -> None:
        import torch

        self.torch = torch
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = max(1, batch_size)
        self.add_bos = add_bos
        self.device = next(model.parameters()).device
        self.max_length = max_length or _max_length(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)
        bos = tokenizer.bos_token_id
        self.prefix_id = bos if bos is not None else tokenizer.eos_token_id
        self._bos_text = tokenizer.decode(self.prefix_id) if self.prefix_id is not None else None
        self._keep = _accepts(model, "logits_to_keep") and _per_row_logits_to_keep()
        self._cache_kw = "cache" if _accepts(model, "cache") else "past_key_values"
        self._dtype = next(model.parameters()).dtype
        self._last_cache: Any = None

    # --- tokenisation (the harness' rules) --------------------------------------------------------------
    def _special(self, text: str) -> bool:
        return self.add_bos and not (self._bos_text and text.startswith(self._bos_text))

    def _encode_texts(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, in one tokenizer call per special-token setting."""
        out: list[list[int]] = [[] for _ in texts]
        for flag in (True, False):
            idx = [i for i, t in enumerate(texts) if self._special(t) == flag]
            if idx:
                ids = self.tokenizer([texts[i] for i in idx], add_special_tokens=flag)["input_ids"]
                for i, row in zip(idx, ids, strict=True):
                    out[i] = list(row)
        return out

    def encode_many(self, questions: list[tuple[str, tuple[str, ...]]]) -> list[Encoded]:
        texts: list[str] = []
        for context, choices in questions:
            n_spaces = len(context) - len(context.rstrip())
            ctx, moved = (context[:-n_spaces], context[-n_spaces:]) if n_spaces else (context, "")
            texts.append(ctx)
            texts.extend(ctx + moved + TARGET_DELIMITER + c for c in choices)
        enc = self._encode_texts(texts)
        out, k = [], 0
        for context, choices in questions:
            ctx_ids, wholes = enc[k], enc[k + 1 : k + 1 + len(choices)]
            k += 1 + len(choices)
            if not context:  # the harness scores an empty context after its prefix token
                conts = self._encode_texts([TARGET_DELIMITER + c for c in choices])
                out.append(Encoded([self.prefix_id], conts))
            else:
                out.append(Encoded(ctx_ids, [w[len(ctx_ids) :] for w in wholes]))
        return out

    def encode(self, context: str, choices: tuple[str, ...] | list[str]) -> Encoded:
        return self.encode_many([(context, tuple(choices))])[0]

    # --- rows ---------------------------------------------------------------------------------------------
    def _rows(self, qi: int, e: Encoded) -> list[_Row]:
        n, limit = len(e.context), self.max_length + 1
        if n + max(len(c) for c in e.continuations) > limit:  # cut per choice, as the harness does
            rows = []
            for j, cont in enumerate(e.continuations):
                seq = (e.context + cont)[-limit:]
                rows.append(self._tree(qi, seq[: len(seq) - len(cont)], [(j, cont)]))
            return rows
        return [self._tree(qi, e.context, list(enumerate(e.continuations)))]

    @staticmethod
    def _tree(qi: int, context: list[int], conts: list[tuple[int, list[int]]]) -> _Row:
        n = len(context)
        row = _Row(qi, list(context), [], n)
        nodes: dict[tuple[int, ...], int] = {}
        for j, cont in conts:
            for k, tok in enumerate(cont):
                if k == 0:
                    pos = n - 1
                else:
                    prefix = tuple(cont[:k])
                    if prefix not in nodes:
                        nodes[prefix] = len(row.tokens)
                        row.tokens.append(cont[k - 1])
                        row.parents.append(nodes[prefix[:-1]] if k > 1 else n - 1)
                        row.depth.append(k)
                    pos = nodes[prefix]
                row.targets.append((j, pos, tok))
        row.chain = all(p == n - 1 + i for i, p in enumerate(row.parents))
        return row

    # --- batched scoring ------------------------------------------------------------------------------------
    def score(self, questions: list[tuple[str, tuple[str, ...]]]) -> list[list[float]]:
        """Summed continuation log-likelihood per choice, for each (context, choices), in input order."""
        encoded = self.encode_many(questions)
        out = [[0.0] * len(e.continuations) for e in encoded]
        rows = [r for qi, e in enumerate(encoded) for r in self._rows(qi, e)]
        rows.sort(key=lambda r: (not r.chain, -len(r.tokens)))  # chains first, each kind longest first
        for s in range(0, len(rows), self.batch_size):
            batch = rows[s : s + self.batch_size]
            for r, vals in zip(batch, self._score_safely(batch), strict=True):
                for (j, _, _), v in zip(r.targets, vals, strict=True):
                    out[r.question][j] += v
        return out

    def _score_safely(self, batch: list[_Row]) -> list[list[float]]:
        try:
            if all(r.chain for r in batch):
                return self._score_chains(batch)
            return self._score_trees(batch)
        except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError: halve the batch
            if "out of memory" not in str(exc).lower() or len(batch) == 1:
                raise
            if self.device.type == "cuda":
                self.torch.cuda.empty_cache()
            half = len(batch) // 2
            return self._score_safely(batch[:half]) + self._score_safely(batch[half:])

    def _logprobs(self, ids: Any, keep: list[list[int]], **kwargs: Any) -> Any:
        """Log-softmax of the next-token logits at positions `keep` of each row (B x K x V)."""
        torch = self.torch
        pos = torch.tensor(keep, device=self.device)
        out = self.model(input_ids=ids, **({"logits_to_keep": pos} if self._keep else {}), **kwargs)
        if self._keep and tuple(out.logits.shape[:-1]) != tuple(pos.shape):  # a model that reads it otherwise
            self._keep = False
            out = self.model(input_ids=ids, **kwargs)
        if kwargs.get("use_cache"):
            self._last_cache = out.cache if "cache" in out else out.past_key_values
        logits = out.logits if self._keep else out.logits[torch.arange(len(keep), device=self.device)[:, None], pos]
        return torch.log_softmax(logits.float(), dim=-1)

    def _score_chains(self, batch: list[_Row]) -> list[list[float]]:
        """One pass: each row is its context and trie (a chain), right-padded under the causal mask."""
        torch = self.torch
        width = max(len(r.tokens) for r in batch)
        ids = torch.tensor([r.tokens + [self.pad_id] * (width - len(r.tokens)) for r in batch], device=self.device)
        wanted = [sorted({p for _, p, _ in r.targets}) for r in batch]
        k = max(len(w) for w in wanted)
        with torch.inference_mode():
            logp = self._logprobs(ids, [w + [w[-1]] * (k - len(w)) for w in wanted], use_cache=False)
            index = [
                (b, w.index(p), tok)
                for b, (r, w) in enumerate(zip(batch, wanted, strict=True))
                for _, p, tok in r.targets
            ]
            vals = logp[tuple(torch.tensor(col) for col in zip(*index, strict=True))].tolist()
        return _split(vals, batch)

    def _score_trees(self, batch: list[_Row]) -> list[list[float]]:
        """Pass 1: the contexts (right-padded, causal), logits at each row's last context position, KV
        cache kept. Pass 2: every row's trie tokens at once on that cache, each seeing its own row's
        context and its ancestors (a small 4D mask)."""
        torch = self.torch
        lens = [r.n_context for r in batch]
        width = max(lens)
        ids = torch.tensor(
            [r.tokens[: r.n_context] + [self.pad_id] * (width - r.n_context) for r in batch], device=self.device
        )
        n_nodes = max(len(r.tokens) - r.n_context for r in batch)
        with torch.inference_mode():
            first = self._logprobs(ids, [[n - 1] for n in lens], use_cache=True)[:, 0]
            cache = self._last_cache
            node_ids, mask, pos = self._trie_inputs(batch, width, n_nodes)
            second = torch.log_softmax(
                self.model(
                    input_ids=node_ids,
                    attention_mask=mask,
                    position_ids=pos,
                    use_cache=False,
                    **{self._cache_kw: cache},
                ).logits.float(),
                dim=-1,
            )
            in_first = [(b, tok) for b, r in enumerate(batch) for _, p, tok in r.targets if p < r.n_context]
            in_second = [
                (b, p - r.n_context, tok) for b, r in enumerate(batch) for _, p, tok in r.targets if p >= r.n_context
            ]
            got = (
                iter(first[tuple(torch.tensor(c) for c in zip(*in_first, strict=True))].tolist()),
                iter(
                    second[tuple(torch.tensor(c) for c in zip(*in_second, strict=True))].tolist() if in_second else []
                ),
            )
            flat = [next(got[p >= r.n_context]) for r in batch for _, p, _ in r.targets]
        return _split(flat, batch)

    def _trie_inputs(self, batch: list[_Row], width: int, n_nodes: int) -> tuple[Any, Any, Any]:
        """Trie tokens (B x K), their 4D additive mask over cache + trie (B x 1 x K x (W + K)) and positions:
        a trie token sees its row's context, its ancestors and itself; padding sees only itself."""
        torch = self.torch
        allowed = torch.zeros(len(batch), n_nodes, width + n_nodes, dtype=torch.bool)
        pos = torch.zeros(len(batch), n_nodes, dtype=torch.long)
        ids = torch.full((len(batch), n_nodes), self.pad_id, dtype=torch.long)
        for b, r in enumerate(batch):
            n = r.n_context
            for i, (parent, depth) in enumerate(zip(r.parents, r.depth, strict=True)):
                ids[b, i] = r.tokens[n + i]
                allowed[b, i, :n] = True
                if parent >= n:  # the parent's own row already holds its ancestors and itself
                    allowed[b, i, width : width + i] = allowed[b, parent - n, width : width + i]
                allowed[b, i, width + i] = True
                pos[b, i] = n - 1 + depth
            for i in range(len(r.parents), n_nodes):
                allowed[b, i, width + i] = True
        mask = torch.zeros(len(batch), 1, n_nodes, width + n_nodes, dtype=self._dtype)
        mask.masked_fill_(~allowed[:, None], torch.finfo(self._dtype).min)
        return ids.to(self.device), mask.to(self.device), pos.to(self.device)

    # --- reference --------------------------------------------------------------------------------------
    def score_one_at_a_time(self, questions: list[tuple[str, tuple[str, ...]]]) -> list[list[float]]:
        """The harness' computation, unbatched: one forward over (context + continuation)[:-1] per choice."""
        torch = self.torch
        out = []
        with torch.inference_mode():
            for e in self.encode_many(questions):
                lls = []
                for cont in e.continuations:
                    seq = (e.context + cont)[-(self.max_length + 1) :]
                    inp = torch.tensor([seq[:-1]], device=self.device)
                    logp = torch.log_softmax(self.model(input_ids=inp).logits[0, -len(cont) :].float(), dim=-1)
                    lls.append(float(logp[torch.arange(len(cont)), torch.tensor(cont, device=self.device)].sum()))
                out.append(lls)
        return out


def _split(values: list[float], batch: list[_Row]) -> list[list[float]]:
    out, s = [], 0
    for r in batch:
        out.append(values[s : s + len(r.targets)])
        s += len(r.targets)
    return out


def _per_row_logits_to_keep() -> bool:
    """True when transformers reads a 2D `logits_to_keep` as positions per row (transformers 5)."""
    try:
        from transformers.modeling_utils import slice_logits_to_keep  # noqa: F401
    except ImportError:
        return False
    return True


def _max_length(model: Any, tokenizer: Any) -> int:
    """The model window as the harness resolves it (`lm_eval.models.utils.resolve_max_length`): the first
    of n_positions / max_position_embeddings / n_ctx in `text_config` (else the config), then the
    tokenizer's model_max_length when set, else 2048."""
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "text_config", None) or cfg
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        v = getattr(cfg, attr, None)
        if v is not None:
            return int(v)
    m = getattr(tokenizer, "model_max_length", None)
    return int(m) if m is not None and m != 1000000000000000019884624838656 else 2048


def predictions(choices: tuple[str, ...], lls: list[float]) -> tuple[int, int]:
    """(argmax of log-likelihood, argmax of log-likelihood per character of the choice), as the
    harness' acc and acc_norm (length = len(choice) without the delimiter)."""
    pred = max(range(len(lls)), key=lambda j: lls[j])
    pred_norm = max(range(len(lls)), key=lambda j: lls[j] / max(1, len(choices[j])))
    return pred, pred_norm
