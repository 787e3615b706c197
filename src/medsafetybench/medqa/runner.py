"""Running medical QA evaluations: score what the store lacks, under the protocol asked for, and read
the result back from the store.

`evaluate_medqa(store, spec, ..., protocol=...)` is the one entry point (CLI, sweep, studies):

* `protocol="harness"` (default): `hf:` models by log-likelihood (`loglik.LogLikScorer`, `add_bos`
  setting), `openai:` chat APIs by one 64-token generation read by `extract.extract_choice`;
* `protocol="paper"` (or a dict / `PaperProtocol`): generation as meditron-eval does it (`paper.py`),
  one generation per question and seed or branch, on `hf:` (raw prompt), `openai:` and `vllm:` models
  through the `ChatModel` interface.

Every score is stored as it finishes (`scores.py`), keyed by model identity, task, question, prompt and
protocol settings, so a re-run computes nothing, an interrupted run resumes, and results of different
protocols or settings never stand in for each other. Failed API calls are not stored and are retried
by the next run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..errors import UserError
from ..models.base import ChatRequest, Completion, GenerationConfig
from ..models.loading import load_model
from ..models.spec import ModelSpec, parse_spec
from ..store import Store
from . import paper
from .compare import MedQAComparison, compare_results
from .extract import GEN_MAX_TOKENS, generation_prompt
from .loglik import LogLikScorer
from .protocols import HARNESS, HarnessProtocol, PaperProtocol, Protocol, make_protocol
from .results import GENERATE, LOGLIK, MedQAResult, build_result
from .scores import NewRow, canonical, existing, fetch, harness_key, paper_key, put
from .tasks import PROMPT_VERSION, Question, Task, data_root, load_task, resolve_tasks

CHUNK = 512  # questions scored (and sorted by length) together, then stored

__all__ = ["CHUNK", "compare_medqa", "evaluate_medqa"]


class Progress:  # the pipeline's protocol: start(stage, total) / advance(stage, n)
    def start(self, stage: str, total: int) -> None: ...
    def advance(self, stage: str, n: int = 1) -> None: ...


def ensure_schema(store: Store) -> None:
    """Kept for callers: the tables are created and migrated when the store opens (`migrations`)."""


def _open_model(spec: ModelSpec, proto: Protocol, batch_size: int, options: dict[str, Any]) -> tuple[Any, str, str]:
    """(model object, identity, mode) without loading weights (hf: loads lazily when needed)."""
    if spec.backend == "hf":
        from ..models.hf_backend import HFChatModel

        m = HFChatModel(
            spec.name,
            spec.adapter,
            prompt_format="raw",
            batch_size=batch_size,
            device=options.get("device"),
            dtype=options.get("dtype"),
        )
        return (m, f"{m.identity}|loglik", LOGLIK) if proto.name == HARNESS else (m, m.identity, GENERATE)
    if spec.backend == "openai":
        keys = ("concurrency", "timeout", "api_key")
        m = load_model(spec, **{k: options[k] for k in keys if options.get(k) is not None})
        return m, m.identity, GENERATE
    if proto.name == HARNESS:
        raise UserError(
            f"the harness protocol scores local models by log-likelihood (hf:) or chat APIs by generation "
            f"(openai:); '{spec}' is {spec.backend}: use hf: with the same weights, or --protocol paper"
        )
    m = load_model(spec, prompt_format="raw", **{k: v for k, v in options.items() if v is not None})
    return m, m.identity, GENERATE


def evaluate_medqa(
    store: Store,
    model_spec: str,
    tasks: Sequence[str] | None = None,
    data_dir: Any = None,
    limit: int | None = None,
    batch_size: int = 16,
    progress: Any = None,
    *,
    protocol: str | dict | Protocol = HARNESS,
    add_bos: bool | None = None,
    shots: int = 0,
    model: Any = None,
    seed: int = 0,
    **options: Any,
) -> MedQAResult:
    """Score `model_spec` on the medical QA tasks (default: medqa, medmcqa, pubmedqa, mmlu_medical) under
    `protocol`, computing only what the store lacks, and return per-task accuracies.

    Args:
        store: the project store.
        model_spec: `hf:PATH[+ADAPTER]`, `openai:MODEL[@URL]` or (paper protocol) `vllm:PATH`.
        tasks: task or group names.
        data_dir: folder with the released files (else $MEDSAFETYBENCH_MEDQA_DATA).
        limit: keep the first N questions of each task.
        batch_size: questions per forward pass (hf:).
        progress: an object with start(stage, total) / advance(stage, n).
        protocol: "harness", "paper", a dict such as {"name": "paper", "shots": 3, "cot": False} (study
            files, the sweep) or a `HarnessProtocol` / `PaperProtocol`.
        add_bos: harness only: False scores without the BOS token (release 0.1.0's setting).
        shots: paper only: in-context shots (the same as protocol={"name": "paper", "shots": N}).
        model: a ready `HFChatModel` / `ChatModel` for that spec (its identity is used).
        seed: bootstrap seed of the accuracy intervals.
        **options: backend options (concurrency, timeout, api_key, device, dtype).
    """
    proto = make_protocol(protocol, **({"add_bos": add_bos} if add_bos is not None else {}))
    if shots:
        if proto.name == HARNESS:
            raise UserError(
                "--shots: the harness protocol is zero-shot (its tasks carry no exemplars here); "
                "in-context shots are part of --protocol paper (--paper-shots N)"
            )
        proto = replace(proto, shots=shots)
    spec = parse_spec(model_spec)
    task_list = resolve_tasks(list(tasks) if tasks else None)
    questions = {t.name: load_task(t, data_dir, limit) for t in task_list}
    if model is None:
        model, identity, mode = _open_model(spec, proto, batch_size, options)
    else:
        mode = LOGLIK if spec.backend == "hf" and proto.name == HARNESS else GENERATE
        if mode == GENERATE and getattr(model, "prompt_format", "raw") != "raw" and proto.name != HARNESS:
            raise UserError(
                f"the paper protocol sends raw prompts: give a model with prompt_format='raw' "
                f"(got {model.prompt_format!r})"
            )
        identity = model.identity + ("|loglik" if mode == LOGLIK else "")
    progress = progress or Progress()
    computed, failed, errors = 0, 0, []
    keys: list[str] = []
    if isinstance(proto, HarnessProtocol):
        for task in task_list:
            qs = questions[task.name]
            task_keys = [harness_key(identity, task.name, q, mode, proto) for q in qs]
            keys += task_keys
            have = existing(store, task_keys)
            todo = [(q, k) for q, k in zip(qs, task_keys, strict=True) if k not in have]
            stage = f"medqa {task.name}"
            progress.start(stage, len(todo))
            if todo and mode == LOGLIK:
                _run_loglik(store, model, identity, task, todo, batch_size, progress, stage, proto)
            elif todo:
                f, e = _run_generate(store, model, identity, task, todo, progress, stage, proto)
                failed, errors = failed + f, errors + e
            computed += len(todo)
    else:
        jobs = _paper_jobs(model, identity, task_list, questions, data_dir, proto)
        keys = [j[0] for j in jobs]
        have = existing(store, keys)
        todo = [j for j in jobs if j[0] not in have]
        progress.start("medqa paper", len(todo))
        if todo:
            failed, errors = _run_paper(store, model, identity, todo, progress, proto)
        computed = len(todo)
    result = build_result(str(spec), identity, mode, proto, fetch(store, keys), questions, seed)
    result.computed, result.failed, result.errors = computed - failed, failed, errors
    return result


def _row(
    key: str,
    identity: str,
    task: str,
    q: Question,
    mode: str,
    proto: Protocol,
    *,
    lls: list[float] | None = None,
    raw: str | None = None,
    gold: int | None = None,
    replicate: int | None = None,
    prompt_version: str = PROMPT_VERSION,
) -> NewRow:
    return NewRow(
        key,
        identity,
        task,
        q.id,
        prompt_version,
        mode,
        q.gold if gold is None else gold,
        json.dumps(lls) if lls is not None else None,
        raw,
        proto.name,
        canonical(proto.settings(mode)),
        replicate,
    )


def _run_loglik(
    store: Store,
    model: Any,
    identity: str,
    task: Task,
    todo: list,
    batch_size: int,
    progress: Any,
    stage: str,
    proto: HarnessProtocol,
) -> None:
    remote = getattr(model, "loglik_scorer", None)  # e.g. a Ray replica's (models.ray_engine.RemoteLogLik)
    if remote is not None:
        scorer = remote(batch_size=batch_size, add_bos=proto.add_bos)
    else:
        if getattr(model, "model", None) is None:
            model.load()
        scorer = LogLikScorer(model.model, model.tokenizer, batch_size=batch_size, add_bos=proto.add_bos)
    for s in range(0, len(todo), CHUNK):  # store each chunk as it finishes: a killed run keeps it
        chunk = todo[s : s + CHUNK]
        lls = scorer.score([(q.prompt, q.choices) for q, _ in chunk])
        put(
            store, [_row(k, identity, task.name, q, LOGLIK, proto, lls=v) for (q, k), v in zip(chunk, lls, strict=True)]
        )
        progress.advance(stage, len(chunk))


def _generate(
    store: Store, model: Any, requests: list[ChatRequest], rows: list, progress: Any, stage: str
) -> tuple[int, list[str]]:
    """Generate `requests`; store each reply as `rows[i](text)` (buffered, flushed every 64); failures are
    counted and not stored."""
    buffer: list[NewRow] = []
    errors: list[str] = []

    def on_result(i: int, completion: Completion) -> None:
        if completion.ok:
            buffer.append(rows[i][1](completion.text))
            if len(buffer) >= 64:
                put(store, buffer)
                buffer.clear()
        else:
            errors.append(f"{rows[i][0]}: {completion.error}")
        progress.advance(stage, 1)

    async def run() -> None:
        from ..models.openai_backend import OpenAIChatModel

        try:
            await model.generate(requests, on_result=on_result)
        finally:  # an HTTP session is closed in the loop that opened it (no "Unclosed client session"); the
            if isinstance(model, OpenAIChatModel):  # model opens a new one in the next loop. Local models
                await model.aclose()  # stay loaded for the next task.

    try:
        asyncio.run(run())
    finally:
        put(store, buffer)
    return len(errors), errors


def _run_generate(
    store: Store, model: Any, identity: str, task: Task, todo: list, progress: Any, stage: str, proto: HarnessProtocol
) -> tuple[int, list[str]]:
    config = GenerationConfig(max_new_tokens=GEN_MAX_TOKENS)
    requests = [ChatRequest.simple(generation_prompt(q.prompt, q.choices), config=config) for q, _ in todo]
    rows = [
        (f"{task.name} {q.id}", lambda text, q=q, k=k: _row(k, identity, task.name, q, GENERATE, proto, raw=text))
        for q, k in todo
    ]
    return _generate(store, model, requests, rows, progress, stage)


def _paper_jobs(
    model: Any,
    identity: str,
    task_list: list[Task],
    questions: dict[str, list[Question]],
    data_dir: Any,
    proto: PaperProtocol,
) -> list[tuple]:
    """(key, task, question, replicate, gold index, request) for every generation the protocol asks for."""
    if getattr(model, "tokenizer", "none") is None and hasattr(model, "load"):  # hf: not loaded yet
        model.load()  # its tokenizer sets max_new_tokens and the stop strings
    tokenizer = getattr(model, "tokenizer", None)
    stops = paper.stop_sequences(tokenizer)
    pools: dict[str, list[tuple[str, str]]] = {}
    jobs = []
    for task in task_list:
        bench = paper.REFERENCE_BENCHMARK[task.name]
        if proto.shots and bench not in pools:
            pools[bench] = paper.load_shot_pool(bench, data_root(data_dir))
        qs = questions[task.name]
        golds = [paper.base_prompt(bench, q)[1] for q in qs]
        for kind, value in proto.replicates():
            shots = []
            if proto.shots:
                pool = pools[bench]
                shots = [pool[i] for i in paper.shot_indices(len(pool), proto.shots, proto.seed_for((kind, value)))]
            for i, q in enumerate(qs):
                first_gold = golds[i - i % proto.batch_size]
                config = GenerationConfig(
                    max_new_tokens=paper.max_new_tokens(first_gold, tokenizer, proto),
                    temperature=paper.SC_TEMPERATURE if proto.sc else 0.0,
                    top_p=1.0,
                    seed=value if kind == "branch" else None,
                    stop=stops,
                    frequency_penalty=paper.FREQUENCY_PENALTY,
                )
                prompt = paper.render(bench, q, proto, shots)
                key = paper_key(
                    identity, task.name, q, paper.PAPER_PROMPT_VERSION, prompt, config.to_dict(), proto, value
                )
                jobs.append(
                    (key, task.name, q, value, task.choices.index(golds[i]), ChatRequest.simple(prompt, config=config))
                )
    return jobs


def _run_paper(
    store: Store, model: Any, identity: str, todo: list[tuple], progress: Any, proto: PaperProtocol
) -> tuple[int, list[str]]:
    rows = [
        (
            f"{task} {q.id}" + (f" ({value})" if value is not None else ""),
            lambda text, key=key, task=task, q=q, value=value, gold=gold: _row(
                key,
                identity,
                task,
                q,
                GENERATE,
                proto,
                raw=text,
                gold=gold,
                replicate=value,
                prompt_version=paper.PAPER_PROMPT_VERSION,
            ),
        )
        for key, task, q, value, gold, _ in todo
    ]
    return _generate(store, model, [j[5] for j in todo], rows, progress, "medqa paper")


def compare_medqa(
    store: Store,
    spec_a: str,
    spec_b: str,
    tasks: Sequence[str] | None = None,
    data_dir: Any = None,
    limit: int | None = None,
    batch_size: int = 16,
    progress: Any = None,
    **options: Any,
) -> MedQAComparison:
    """Evaluate both models under the same protocol (cached where already done) and compare them."""
    a = evaluate_medqa(store, spec_a, tasks, data_dir, limit, batch_size, progress, **options)
    b = evaluate_medqa(store, spec_b, tasks, data_dir, limit, batch_size, progress, **options)
    return compare_results(a, b)
