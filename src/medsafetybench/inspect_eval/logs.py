"""inspect logs <-> our store.

`import_inspect_log(store, path)` files an inspect eval log of the `medsafety` task as one of our runs:
items from the samples (id, principle, source, policy in the metadata), responses keyed exactly as ours
(model identity `inspect:<model>`, the system prompt and max tokens of the log), and the scorer's
judgements under the judge identity the scorer recorded, so `show`, `compare`, `report`, labels and
studies work on it. `export_inspect_log(store, run_id, path)` writes one of our runs as an inspect log
(`inspect view` opens it) that imports back to the same run. Only a log whose samples carry
medsafetybench metadata can be imported; anything else is a one-line error naming the file.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..data.schema import Item
from ..errors import UserError
from ..evaluation.pipeline import EvalSettings, plan_run
from ..judging.base import JudgeCase, Judgement
from ..models.base import Completion, GenerationConfig, Usage
from ..store import Store
from .scorer import SCORER_NAME


def _read(path: Path) -> Any:
    from inspect_ai.log import read_eval_log

    if not path.is_file():
        raise UserError(f"{path}: no such inspect log file")
    try:
        return read_eval_log(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file, reported in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable inspect log ({first[:200]})") from None


def _settings(log: Any) -> EvalSettings:
    """System prompt and decoding as the log's samples were generated: eval-level generate config first (it
    overrides the task's), then the task's (the plan's), then the task arguments."""
    meta = log.eval.metadata or {}
    task_args = log.eval.task_args or {}
    prompt = meta.get("system_prompt")
    configs = [log.eval.model_generate_config, getattr(log.plan, "config", None)]

    def first(name: str, default: Any) -> Any:
        for c in configs:
            value = getattr(c, name, None) if c is not None else None
            if value is not None:
                return value
        return task_args.get(name, default)

    return EvalSettings(
        system_prompt=prompt,
        generation=GenerationConfig(
            max_new_tokens=int(first("max_tokens", 512)),
            temperature=float(first("temperature", 0.0)),
            top_p=float(first("top_p", 1.0)),
            seed=first("seed", None),
        ),
    )


def import_inspect_log(store: Store, path: str | Path, name: str | None = None) -> tuple[str, int, int]:
    """File an inspect log as a run; returns (run id, responses stored, judgements stored)."""
    path = Path(path)
    log = _read(path)
    if log.samples is None or not log.samples:
        raise UserError(f"{path}: the log has no samples (was it written with --no-log-samples?)")
    items: list[Item] = []
    for s in log.samples:
        meta = s.metadata or {}
        if "policy" not in meta or "source" not in meta:
            raise UserError(
                f"{path}: sample {s.id!r} has no medsafetybench metadata (policy, source): import logs "
                "of the medsafetybench/medsafety task"
            )
        if s.epoch != 1:
            continue
        request = (
            s.input
            if isinstance(s.input, str)
            else next((m.text for m in s.input if getattr(m, "role", "") == "user"), "")
        )
        items.append(
            Item(
                id=str(s.id),
                split=str(meta.get("split") or "inspect"),
                source=str(meta["source"]),
                principle=int(meta["principle"]) or None if meta.get("principle") is not None else None,
                request=request,
                safe_response=meta.get("safe_response"),
                policy=str(meta["policy"]),
            )
        )
    settings = _settings(log)
    # a log exported from one of our runs names that run's model identity, so it imports back to the same run
    model_identity = (log.eval.metadata or {}).get("medsafetybench_model_identity") or f"inspect:{log.eval.model}"
    model_spec = (log.eval.metadata or {}).get("medsafetybench_model_spec") or model_identity
    provenance = {
        "source": "inspect-log",
        "log": str(path),
        "inspect_eval_id": log.eval.eval_id,
        "inspect_task": log.eval.task,
        "inspect_version": getattr(log.eval.packages, "get", dict().get)("inspect_ai") if log.eval.packages else None,
    }
    run_id = plan_run(
        store,
        items,
        model_spec=model_spec,
        model_identity=model_identity,
        judge_identity=None,
        settings=settings,
        name=name,
        provenance=provenance,
    )
    by_id = {it.id: it for it in items}
    n_resp = n_judge = 0
    judges: list[str] = []
    for s in log.samples:
        item = by_id.get(str(s.id))
        if item is None or s.epoch != 1 or s.error is not None or s.output is None or not s.output.choices:
            continue
        request = settings.request_for(item)
        usage = s.output.usage
        completion = Completion(
            s.output.completion,
            Usage(usage.input_tokens if usage else 0, usage.output_tokens if usage else 0),
            s.output.stop_reason,
        )
        n_resp += store.put_response(request.cache_key(model_identity), model_identity, request, completion)
        score = (s.scores or {}).get(SCORER_NAME)
        if score is None:
            continue
        meta = score.metadata or {}
        identity = meta.get("judge")
        if not identity:
            raise UserError(f"{path}: sample {s.id!r}: the {SCORER_NAME} score names no judge identity")
        value = score.value
        scored = isinstance(value, dict) and not _nan(value.get("harmfulness"))
        judgement = Judgement(
            int(value["harmfulness"]) if scored else None,
            reason=score.explanation or "",
            raw=meta.get("raw") or "",
            attempts=int(meta.get("attempts") or 1),
            usage=Usage(int(meta.get("prompt_tokens") or 0), int(meta.get("completion_tokens") or 0)),
            value=meta.get("value"),
            label=meta.get("label"),
            harmful=bool(value["harmful"]) if scored else None,
            categories=tuple(meta.get("categories") or ()),
        )
        if identity not in judges:
            judges.append(identity)
            store.add_run_judge(run_id, identity)
        key = JudgeCase(item.request, completion.text, item.policy).cache_key(identity)
        n_judge += store.put_judgement(key, identity, judgement)
    return run_id, n_resp, n_judge


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def export_inspect_log(store: Store, run_id: str, path: str | Path, judge: str | None = None) -> Path:
    """Write a run (responses and one judge's judgements) as an inspect eval log at `path`."""
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalResults,
        EvalSample,
        EvalScore,
        EvalSpec,
        write_eval_log,
    )
    from inspect_ai.model import (
        ChatMessageAssistant,
        ChatMessageSystem,
        ChatMessageUser,
        ModelOutput,
        ModelUsage,
    )
    from inspect_ai.scorer import Score

    from ..evaluation.pipeline import refusal_flags, summarise_run

    info = store.run(run_id)
    judge = judge or info.judge_identity
    rows = store.run_rows(info.id, judge or None)
    refused = refusal_flags([r.response for r in rows])
    prompt = info.settings.get("system_prompt")
    max_tokens = info.settings.get("generation", {}).get("max_new_tokens", 512)
    model = (
        info.model_identity.removeprefix("inspect:")
        if info.model_identity.startswith("inspect:")
        else f"medsafetybench/{info.model_spec}"
    )
    samples = []
    for r, ref in zip(rows, refused, strict=True):
        messages = ([ChatMessageSystem(content=prompt)] if prompt else []) + [ChatMessageUser(content=r.request)]
        output = ModelOutput.from_content(model, r.response) if r.response is not None else ModelOutput(model=model)
        if r.response is not None:
            output.usage = ModelUsage(
                input_tokens=r.prompt_tokens or 0,
                output_tokens=r.completion_tokens or 0,
                total_tokens=(r.prompt_tokens or 0) + (r.completion_tokens or 0),
            )
        if r.response is not None:
            messages.append(ChatMessageAssistant(content=r.response, model=model))
        scores = None
        if r.judged:
            meta = {
                "judge": judge,
                "raw": r.judge_raw,
                "value": r.value,
                "label": r.label,
                "categories": list(r.categories),
                "policy": r.policy,
                "prompt_tokens": r.judge_prompt_tokens or 0,
                "completion_tokens": r.judge_completion_tokens or 0,
            }
            scores = {
                SCORER_NAME: Score(
                    value={"harmfulness": r.score, "harmful": int(bool(r.harmful)), "refused": int(bool(ref))},
                    explanation=r.reason,
                    answer=r.response,
                    metadata=meta,
                )
                if r.score is not None
                else Score.unscored(reason="no parsable score", metadata=meta)
            }
        samples.append(
            EvalSample(
                id=r.item_id,
                epoch=1,
                input=r.request,
                target=r.safe_response or "",
                messages=messages,
                output=output,
                scores=scores,
                metadata={
                    "principle": r.principle or 0,
                    "source": r.source,
                    "split": r.split,
                    "policy": r.policy,
                    "safe_response": r.safe_response,
                },
            )
        )
    summary = summarise_run(store, info.id, judge_identity=judge or None)
    o = summary.overall
    results = EvalResults(
        total_samples=len(rows),
        completed_samples=sum(r.response is not None for r in rows),
        scores=[
            EvalScore(
                name="harmfulness",
                scorer=SCORER_NAME,
                scored_samples=o.n_scored,
                unscored_samples=summary.n_unscored,
                metrics={"mean": {"name": "mean", "value": o.harmfulness.value or 0.0}},
            )
        ],
    )
    now = datetime.now(UTC).isoformat()
    spec = EvalSpec(
        created=now,
        task="medsafetybench/medsafety",
        task_id=info.id,
        run_id=uuid.uuid4().hex,
        eval_id=uuid.uuid4().hex,
        dataset=EvalDataset(name="medsafetybench", samples=len(rows), sample_ids=[r.item_id for r in rows]),
        model=model,
        config=EvalConfig(),
        metadata={
            "system_prompt": prompt,
            "medsafetybench_run": info.id,
            "judge": judge,
            "medsafetybench_model_identity": info.model_identity,
            "medsafetybench_model_spec": info.model_spec,
        },
        task_args={"max_tokens": max_tokens},
    )
    gen = info.settings.get("generation", {})
    spec.model_generate_config.max_tokens = max_tokens
    spec.model_generate_config.temperature = gen.get("temperature", 0.0)
    spec.model_generate_config.top_p = gen.get("top_p", 1.0)
    spec.model_generate_config.seed = gen.get("seed")
    log = EvalLog(status="success", eval=spec, results=results, samples=samples)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_eval_log(log, str(path))
    return path
