"""GCG speed on the tiny Llama, against baselines run in the same process on the same model.

1. The candidate-loss forward (the loss of every candidate suffix of one step), at each `--candidates`:
   ours; the same with the whole sequence recomputed (no prefix cache); ours as released in 0.1.0
   (prefix cache, but logits for every position and a cross-entropy over a transposed tensor); and, with
   `--nanogcg`, nanogcg 0.3.0's `_compute_candidates_loss_original` on the same candidates. Each is
   timed `--repeats` times, interleaved, and a check confirms all give the same losses.
2. Seconds per step (gradient, sampling, candidate losses) of ours with and without the prefix cache,
   and, with `--nanogcg`, of the steps of `nanogcg.run` (same search width and top-k), each step timed.

Both report the fastest and the median timing: on a machine shared with other work the fastest is the
least disturbed measurement of the work itself.

nanogcg 0.3.0 pins transformers <= 4.47.1, which this project cannot use (it needs 5.x), so install it
without its dependencies into a folder of its own and put that on the path:

    pip install --no-deps --target /tmp/nanogcg nanogcg==0.3.0
    PYTHONPATH=src:/tmp/nanogcg python bench/gcg_step.py --nanogcg [--steps 3] [--candidates 128 512] [--threads 1]

Under transformers 5 nanogcg's prefix cache fails (it indexes the cache object as a tuple of layers), so
the bench hands it a thin model wrapper that converts between the legacy tuple cache and `DynamicCache`
exactly as transformers 4.47 did inside the model call (one `update` per layer, i.e. one copy of the
expanded prefix); nothing else of nanogcg is changed. nanogcg calls `gc.collect()` after every forward
batch and before each batch-size search, each of which costs about a second in a process holding as many Python
objects as this one (it is cheaper
in a small process), so nanogcg is timed twice: as shipped, and with `gc.collect` made a no-op
("nanogcg compute"), which is the fair comparison of the forward itself.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from medsafetybench.generation.gcg import GCG, GCGConfig
from medsafetybench.generation.prompts import V1, gcg_goal, gcg_target
from medsafetybench.models.hf_backend import HFChatModel
from medsafetybench.testing.tiny import ensure_tiny_llama


def old_candidate_losses(gcg: GCG, candidates: torch.Tensor) -> torch.Tensor:
    """0.1.0's forward: prefix cache, logits for the whole tail, cross-entropy over (b, vocab, T)."""
    after, target = gcg._ids(gcg.after_ids), gcg._ids(gcg.target_ids)
    out = []
    with torch.no_grad():
        for s in range(0, candidates.shape[0], gcg.cfg.batch_size):
            cand = candidates[s : s + gcg.cfg.batch_size]
            b = cand.shape[0]
            tail = torch.cat([cand, after.expand(b, -1), target.expand(b, -1)], dim=1)
            logits = gcg.model(input_ids=tail, use_cache=True, **{gcg._cache_kw: gcg._prefix_cache(b)}).logits
            start = cand.shape[1] + len(gcg.after_ids)
            pred = logits[:, start - 1 : start - 1 + len(gcg.target_ids)].float()
            loss = torch.nn.functional.cross_entropy(pred.transpose(1, 2), target.expand(b, -1), reduction="none")
            out.append(loss.mean(dim=1))
    return torch.cat(out)


class LegacyCacheModel:
    """The model as nanogcg 0.3.0 saw it under transformers 4.47: caches go in and come out as tuples of
    (keys, values) per layer, converted to a `DynamicCache` for the call."""

    def __init__(self, model, cache_kw: str) -> None:
        self._m, self._kw = model, cache_kw

    def __getattr__(self, name: str):
        return getattr(self._m, name)

    def __call__(self, *args, past_key_values=None, **kw):
        from transformers import DynamicCache

        if isinstance(past_key_values, (list, tuple)):
            cache = DynamicCache(config=self._m.config)
            for i, (k, v) in enumerate(past_key_values):
                cache.update(k, v, i)
            kw[self._kw] = cache
        out = self._m(*args, **kw)
        if past_key_values is None and kw.get("use_cache"):
            cache = getattr(out, "cache", None) or out.past_key_values
            out.past_key_values = tuple((layer.keys, layer.values) for layer in cache.layers)
        return out


@contextlib.contextmanager
def no_gc_collect() -> Iterator[None]:
    """nanogcg without its `gc.collect()` calls (its modules' `gc` references, only while timing)."""
    import nanogcg.gcg
    import nanogcg.utils

    real = nanogcg.gcg.gc
    nanogcg.gcg.gc = nanogcg.utils.gc = type("NoGC", (), {"collect": staticmethod(lambda *a: 0)})
    try:
        yield
    finally:
        nanogcg.gcg.gc = nanogcg.utils.gc = real


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def step_times(gcg: GCG, steps: int, use_cache: bool) -> tuple[list[float], float]:
    """Each step's duration, and the mean number of candidates whose loss a step computed."""
    gen = torch.Generator().manual_seed(0)
    current = list(gcg.init_ids)
    times, sizes = [], []
    for _ in range(steps):
        start = time.perf_counter()
        grad, _ = gcg.gradient(current, use_cache=use_cache)
        cands = gcg.sample_candidates(current, grad, gen)
        losses = gcg.candidate_losses(cands, use_cache=use_cache)
        current = cands[int(torch.argmin(losses))].tolist()
        times.append(time.perf_counter() - start)
        sizes.append(cands.shape[0])
    return times, statistics.mean(sizes)


def nanogcg_parts(model: HFChatModel, gcg: GCG, n: int):
    """A nanogcg GCG object set up for our prompt (prefix cache, embeddings), and its loss call."""
    import nanogcg
    import nanogcg.gcg

    cfg = nanogcg.GCGConfig(search_width=n, topk=256, seed=None, verbosity="WARNING", use_prefix_cache=True)
    ng = nanogcg.gcg.GCG(LegacyCacheModel(model.model, gcg._cache_kw), model.tokenizer, cfg)
    emb = model.model.get_input_embeddings()
    with torch.no_grad():
        out = ng.model(inputs_embeds=emb(gcg._ids(gcg.before_ids)).unsqueeze(0), use_cache=True)
    ng.prefix_cache = out.past_key_values
    ng.target_ids = gcg._ids(gcg.target_ids).unsqueeze(0)
    after, target = emb(gcg._ids(gcg.after_ids)).unsqueeze(0), emb(gcg._ids(gcg.target_ids)).unsqueeze(0)

    def losses(cands: torch.Tensor) -> torch.Tensor:  # what one nanogcg step does with its candidates
        with torch.no_grad():
            embeds = torch.cat(
                [emb(cands), after.repeat(cands.shape[0], 1, 1), target.repeat(cands.shape[0], 1, 1)], dim=1
            )
            return ng._compute_candidates_loss_original(cands.shape[0], embeds)

    return losses


def nanogcg_step_times(model: HFChatModel, n: int, steps: int, cache_kw: str) -> tuple[list[float], float]:
    """Duration of each step of `nanogcg.run` (its step loop's progress bar replaced by a timer), and the
    mean number of candidates whose loss a step computed (after its re-tokenisation filter)."""
    import nanogcg
    import nanogcg.gcg

    marks: list[float] = []
    sizes: list[int] = []
    real_loss = nanogcg.gcg.GCG._compute_candidates_loss_original

    def counted(self, batch_size, input_embeds):
        sizes.append(input_embeds.shape[0])
        return real_loss(self, batch_size, input_embeds)

    def timed(iterable):
        for x in iterable:
            marks.append(time.perf_counter())
            yield x
        marks.append(time.perf_counter())

    real, nanogcg.gcg.tqdm = nanogcg.gcg.tqdm, timed
    nanogcg.gcg.GCG._compute_candidates_loss_original = counted
    try:
        torch.manual_seed(0)
        cfg = nanogcg.GCGConfig(
            num_steps=steps, search_width=n, topk=256, seed=None, verbosity="WARNING", use_prefix_cache=True
        )
        nanogcg.run(
            LegacyCacheModel(model.model, cache_kw), model.tokenizer, gcg_goal(4) + " {optim_str}", gcg_target(4), cfg
        )
    finally:
        nanogcg.gcg.tqdm = real
        nanogcg.gcg.GCG._compute_candidates_loss_original = real_loss
    return [b - a for a, b in zip(marks, marks[1:], strict=False)], statistics.mean(sizes[1:])  # [0]: init buffer


def fmt(times: list[float], unit: float = 1.0, suffix: str = " s") -> str:
    return f"{min(times) * unit:.3f}{suffix} (median {statistics.median(times) * unit:.3f})"


def bench(model: HFChatModel, n: int, args: argparse.Namespace) -> None:
    """Both measurements for `n` candidates (see the module docstring)."""
    cfg = GCGConfig.for_version(V1, num_candidates=n, batch_size=args.batch)
    gcg = GCG(model, gcg_goal(4), gcg_target(4), cfg)
    grad, _ = gcg.gradient(gcg.init_ids)
    cands = gcg.sample_candidates(gcg.init_ids, grad, torch.Generator().manual_seed(0))
    fns = {
        "ours": lambda: gcg.candidate_losses(cands),
        "0.1.0": lambda: old_candidate_losses(gcg, cands),
        "no cache": lambda: gcg.candidate_losses(cands, use_cache=False),
    }
    if args.nanogcg:
        ng_losses = nanogcg_parts(model, gcg, n)
        fns["nanogcg"] = lambda: ng_losses(cands)

        def ng_compute() -> torch.Tensor:
            with no_gc_collect():
                return ng_losses(cands)

        fns["nanogcg compute"] = ng_compute
    ref = fns["ours"]()
    same = all(torch.allclose(ref, fn().float(), rtol=1e-4, atol=1e-5) for fn in fns.values())
    for fn in fns.values():  # warm-up
        fn()
    times = {k: [] for k in fns}
    for _ in range(args.repeats):  # interleaved, so load changes hit every variant alike
        for k, fn in fns.items():
            times[k].append(median_time(fn, 1))
    best = {k: min(v) for k, v in times.items()}
    print(
        f"{cands.shape[0]:4d} candidates (prefix {len(gcg.before_ids)} tokens, tail+target "
        f"{len(gcg.after_ids) + len(gcg.target_ids)}), candidate-loss forward, fastest (median) of "
        f"{args.repeats}: " + ", ".join(f"{k} {fmt(v, 1000, ' ms')}" for k, v in times.items())
    )
    print(
        "     ratios of the fastest to ours: "
        + ", ".join(f"{k} x{v / best['ours']:.2f}" for k, v in best.items() if k != "ours")
        + f"; same losses: {same}"
    )
    steps = {
        "ours": step_times(gcg, args.steps, use_cache=True),
        "no prefix cache": step_times(gcg, args.steps, use_cache=False),
    }
    if args.nanogcg:
        steps["nanogcg"] = nanogcg_step_times(model, n, args.steps, gcg._cache_kw)
        with no_gc_collect():
            steps["nanogcg compute"] = nanogcg_step_times(model, n, args.steps, gcg._cache_kw)
    ours = min(steps["ours"][0])
    print(
        f"{n:4d} candidates, seconds per step, fastest (median) of {args.steps} [candidates evaluated per step]: "
        + ", ".join(
            f"{k} {fmt(v)} [{m:.0f}]" + ("" if k == "ours" else f" x{min(v) / ours:.2f}") for k, (v, m) in steps.items()
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--candidates", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--batch", type=int, default=512, help="candidates per forward pass (ours and 0.1.0's)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nanogcg", action="store_true", help="also time nanogcg 0.3.0 (see the docstring)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = HFChatModel(ensure_tiny_llama())
    model.load()
    print(f"torch threads {torch.get_num_threads()}; tiny Llama, suffix 20, top-k 256")
    for n in args.candidates:
        bench(model, n, args)


if __name__ == "__main__":
    main()
