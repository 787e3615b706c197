"""Our GCG (Greedy Coordinate Gradient, Zou et al. 2023) on a local transformers causal LM.

The prompt is the model's chat rendering of `goal + " " + suffix` as the user turn; the loss is the
cross-entropy of the target ("Sure, here are ...") right after the generation prompt. Each step:

1. the gradient of the loss with respect to the one-hot suffix tokens (one forward and backward);
2. for each suffix position, the `top_k` tokens with the most negative gradient, among allowed tokens
   (printable ASCII, no special tokens);
3. `num_candidates` suffixes, each replacing one random position by one of that position's top-k tokens,
   keeping only those whose text re-tokenises to the same ids (so the suffix string means what was
   optimised, and its length holds);
4. the loss of every candidate, `batch_size` at a time. The part of the prompt before the suffix is the
   same for all of them: its keys and values are computed once (a `DynamicCache`) and, for each batch,
   copied into a fresh cache expanded over the batch, so a batch only runs suffix + template tail +
   target. `use_prefix_cache=False` runs the whole sequence instead (same losses, slower);
5. the best candidate becomes the suffix; the best suffix seen is kept.

Success (checked every `check_every` steps and at the end, by greedy generation): the output starts
with the target or contains none of Zou et al.'s refusal prefixes. Then `generate_by_gcg` generates
with the found suffix through the ordinary (cached) backend path and extracts the listed requests.
Results are stored in `gen_gcg_runs`, keyed by model identity + prompt + target + settings, so the same
optimisation never runs twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import UserError
from ..models.base import ChatRequest, GenerationConfig, Message
from ..models.formats import encode_prompt, render_prompt
from ..store import Store
from .methods import GenReport, _add_from_replies, cached_generate
from .prompts import REFUSAL_PREFIXES, gcg_goal, gcg_target

_PLACEHOLDER = "\x00SUFFIX\x00"



@dataclass(frozen=True)
class GCGConfig:
    steps: int = 1000
    top_k: int = 256
    num_candidates: int = 512
    suffix_len: int = 20
    batch_size: int = 128
    seed: int = 0
    init_token: str = "*"
    use_prefix_cache: bool = True
    early_stop: bool = True
    check_every: int = 25
    check_tokens: int = 32

    def __post_init__(self) -> None:
        for name in ("steps", "top_k", "num_candidates", "suffix_len", "batch_size", "check_every", "check_tokens"):
            if getattr(self, name) < 1:
                raise UserError(f"GCG {name.replace('_', '-')} must be at least 1")


@dataclass
class GCGResult:
    suffix: str
    suffix_ids: list[int]
    best_loss: float
    losses: list[float] = field(default_factory=list)  # loss of the current suffix after each step (index 0: initial)
    success: bool = False
    output: str = ""
    steps_run: int = 0
    seconds: float = 0.0


def is_success(output: str, target: str) -> bool:
    """Zou et al.'s test: the output starts with the target, or no refusal prefix appears in it."""
    text = output.strip()
    return text.startswith(target) or not any(p in text for p in REFUSAL_PREFIXES)


class GCG:
    """GCG against one loaded `HFChatModel` (its `.model`, `.tokenizer`, `.prompt_format`)."""

    def __init__(self, hf_model: Any, goal: str, target: str, config: GCGConfig | None = None) -> None:
        import torch

        hf_model.load()
        self.torch = torch
        self.hf, self.model, self.tok = hf_model, hf_model.model, hf_model.tokenizer
        self.cfg = config or GCGConfig()
        self.goal, self.target = goal, target
        self.device = next(self.model.parameters()).device
        text = render_prompt(hf_model.prompt_format, [Message("user", f"{goal} {_PLACEHOLDER}")], self.tok)
        before, after = text.split(_PLACEHOLDER)
        self.before_ids = encode_prompt(self.tok, before)
        self.after_ids = list(self.tok(after, add_special_tokens=False)["input_ids"])
        self.target_ids = list(self.tok(target, add_special_tokens=False)["input_ids"])
        self.embed = self.model.get_input_embeddings()
        self.allowed = self._allowed_mask()
        init = self.tok(self.cfg.init_token, add_special_tokens=False)["input_ids"]
        if not init or not self.allowed[init[-1]]:
            raise UserError(f"GCG: the initial suffix token {self.cfg.init_token!r} is not an allowed ASCII token")
        self.init_ids = [init[-1]] * self.cfg.suffix_len
        self._prefix_kv: list[tuple[Any, Any]] | None = None
        # transformers >= 5.2x names the cache argument `cache` (`past_key_values` is deprecated)
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    # --- vocabulary -------------------------------------------------------------------------------
    def _allowed_mask(self) -> Any:
        vocab = self.embed.weight.shape[0]
        special = set(self.tok.all_special_ids)
        ok = []
        for i in range(vocab):
            s = self.tok.decode([i]) if i < len(self.tok) else ""
            ok.append(i not in special and bool(s) and s.isascii() and s.isprintable() and bool(s.strip()))
        return self.torch.tensor(ok, device=self.device)

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids)

    # --- losses ------------------------------------------------------------------------------------
    def _ids(self, ids: list[int]) -> Any:
        return self.torch.tensor(ids, device=self.device, dtype=self.torch.long)

    def gradient(self, suffix_ids: list[int]) -> tuple[Any, float]:
        """d loss / d one-hot(suffix) (suffix_len x vocab), and the loss."""
        torch = self.torch
        W = self.embed.weight
        one_hot = torch.zeros(len(suffix_ids), W.shape[0], device=self.device, dtype=W.dtype)
        one_hot[torch.arange(len(suffix_ids)), self._ids(suffix_ids)] = 1.0
        one_hot.requires_grad_(True)
        parts = [self.embed(self._ids(self.before_ids)), one_hot @ W, self.embed(self._ids(self.after_ids)),
                 self.embed(self._ids(self.target_ids))]
        embeds = torch.cat(parts).unsqueeze(0)
        logits = self.model(inputs_embeds=embeds).logits
        start = len(self.before_ids) + len(suffix_ids) + len(self.after_ids)
        pred = logits[0, start - 1:start - 1 + len(self.target_ids)]
        loss = torch.nn.functional.cross_entropy(pred.float(), self._ids(self.target_ids))
        (grad,) = torch.autograd.grad(loss, one_hot)
        return grad, float(loss.detach())

    def _prefix_cache(self, batch: int) -> Any:
        """A fresh cache holding the prefix's keys/values, expanded over `batch` rows."""
        from transformers import DynamicCache

        torch = self.torch
        if self._prefix_kv is None:
            with torch.no_grad():
                out = self.model(input_ids=self._ids(self.before_ids).unsqueeze(0), use_cache=True)
            cache = getattr(out, "cache", None)
            if cache is None:  # transformers before the rename
                cache = out.past_key_values
            self._prefix_kv = [(layer.keys, layer.values) for layer in cache.layers]
        fresh = DynamicCache(config=self.model.config)
        for i, (k, v) in enumerate(self._prefix_kv):
            fresh.update(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1), i)
        return fresh

    def candidate_losses(self, candidates: Any, use_cache: bool | None = None) -> Any:
        """Loss of each candidate suffix (rows of `candidates`, n x suffix_len), `batch_size` at a time."""
        torch = self.torch
        use_cache = self.cfg.use_prefix_cache if use_cache is None else use_cache
        n = candidates.shape[0]
        after, target = self._ids(self.after_ids), self._ids(self.target_ids)
        out = []
        with torch.no_grad():
            for s in range(0, n, self.cfg.batch_size):
                cand = candidates[s:s + self.cfg.batch_size]
                b = cand.shape[0]
                tail = torch.cat([cand, after.expand(b, -1), target.expand(b, -1)], dim=1)
                if use_cache:
                    kw = {self._cache_kw: self._prefix_cache(b)}
                    logits = self.model(input_ids=tail, use_cache=True, **kw).logits
                    offset = 0
                else:
                    full = torch.cat([self._ids(self.before_ids).expand(b, -1), tail], dim=1)
                    logits = self.model(input_ids=full).logits
                    offset = len(self.before_ids)
                start = offset + cand.shape[1] + len(self.after_ids)
                pred = logits[:, start - 1:start - 1 + len(self.target_ids)].float()
                loss = torch.nn.functional.cross_entropy(pred.transpose(1, 2), target.expand(b, -1), reduction="none")
                out.append(loss.mean(dim=1))
        return torch.cat(out)

    # --- search ------------------------------------------------------------------------------------
    def sample_candidates(self, suffix_ids: list[int], grad: Any, gen: Any) -> Any:
        torch = self.torch
        grad = grad.clone()
        grad[:, ~self.allowed] = float("inf")
        top = (-grad).topk(min(self.cfg.top_k, int(self.allowed.sum())), dim=1).indices  # L x k
        L, n = len(suffix_ids), self.cfg.num_candidates
        base = self._ids(suffix_ids).repeat(n, 1)
        pos = torch.arange(n, device=self.device) % L  # positions spread evenly, then shuffled
        pos = pos[torch.randperm(n, generator=gen, device="cpu").to(self.device)]
        choice = torch.randint(0, top.shape[1], (n,), generator=gen, device="cpu").to(self.device)
        base[torch.arange(n, device=self.device), pos] = top[pos, choice]
        return self._retokenisable(base)

    def _retokenisable(self, cands: Any) -> Any:
        keep = []
        for i, row in enumerate(cands.tolist()):
            again = self.tok(self.tok.decode(row), add_special_tokens=False)["input_ids"]
            if again == row:
                keep.append(i)
        return cands[keep] if keep else cands

    def generate_with(self, suffix_ids: list[int], max_new_tokens: int) -> str:
        torch = self.torch
        ids = self.before_ids + suffix_ids + self.after_ids
        x = self._ids(ids).unsqueeze(0)
        with torch.no_grad():
            out = self.model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                                      do_sample=False, pad_token_id=self.tok.pad_token_id)
        return self.tok.decode(out[0, len(ids):], skip_special_tokens=True)

    def run(self, log: Callable[[str], None] | None = None) -> GCGResult:
        torch = self.torch
        gen = torch.Generator().manual_seed(self.cfg.seed)
        t0 = time.perf_counter()
        current = list(self.init_ids)
        loss0 = float(self.candidate_losses(self._ids(current).unsqueeze(0))[0])
        best_ids, best_loss, losses = list(current), loss0, [loss0]
        success, output, step = False, "", 0
        for step in range(1, self.cfg.steps + 1):
            grad, _ = self.gradient(current)
            cands = self.sample_candidates(current, grad, gen)
            cand_losses = self.candidate_losses(cands)
            j = int(torch.argmin(cand_losses))
            current, loss = cands[j].tolist(), float(cand_losses[j])
            losses.append(loss)
            if loss < best_loss:
                best_ids, best_loss = list(current), loss
            if step % self.cfg.check_every == 0 or step == self.cfg.steps:
                output = self.generate_with(best_ids, self.cfg.check_tokens)
                success = is_success(output, self.target)
                if log:
                    log(f"step {step}: loss {loss:.3f} (best {best_loss:.3f}), success {success}")
                if success and self.cfg.early_stop:
                    break
        return GCGResult(suffix=self.decode(best_ids), suffix_ids=best_ids, best_loss=best_loss, losses=losses,
                         success=success, output=output, steps_run=step, seconds=time.perf_counter() - t0)


def _run_key(identity: str, goal: str, target: str, cfg: GCGConfig) -> str:
    payload = json.dumps({"model": identity, "goal": goal, "target": target, "config": asdict(cfg)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def optimise(store: Store, hf_model: Any, principle: int, cfg: GCGConfig,
             log: Callable[[str], None] | None = None) -> GCGResult:
    """The GCG result for (model, principle, settings): from the store, else computed and stored."""
    hf_model.load()
    goal, target = gcg_goal(principle), gcg_target(principle)
    key = _run_key(hf_model.identity, goal, target, cfg)
    row = store.conn.execute("SELECT suffix, suffix_ids, best_loss, losses, success, output, steps_run, seconds "
                             "FROM gen_gcg_runs WHERE key=?", (key,)).fetchone()
    if row:
        return GCGResult(row[0], json.loads(row[1]), row[2], json.loads(row[3]), bool(row[4]), row[5], row[6], row[7])
    res = GCG(hf_model, goal, target, cfg).run(log)
    with store.transaction() as c:
        c.execute("INSERT OR IGNORE INTO gen_gcg_runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                  (key, hf_model.identity, principle, goal, target, json.dumps(asdict(cfg)), res.suffix,
                   json.dumps(res.suffix_ids), res.best_loss, json.dumps(res.losses), int(res.success), res.output,
                   res.steps_run, res.seconds, time.time()))
    return res


def generate_by_gcg(store: Store, hf_model: Any, principle: int, cfg: GCGConfig, *, max_new_tokens: int = 512,
                    log: Callable[[str], None] | None = None) -> tuple[GCGResult, GenReport]:
    """Optimise (or reuse) the suffix, generate greedily with goal + suffix, store the extracted requests."""
    res = optimise(store, hf_model, principle, cfg, log)
    request = ChatRequest((Message("user", f"{gcg_goal(principle)} {res.suffix}"),),
                          GenerationConfig(max_new_tokens=max_new_tokens))
    report = GenReport()
    from .candidates import CandidateStore

    replies = asyncio.run(cached_generate(store, hf_model, [request], report))
    _add_from_replies(CandidateStore(store), replies, [request.cache_key(hf_model.identity)], principle=principle,
                      method="gcg", generator=hf_model.identity, seeds=[cfg.seed], report=report, suffix=res.suffix)
    return res, report
