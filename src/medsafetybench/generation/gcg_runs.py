"""GCG runs in the project store: keys, checkpoints, listing, and generation with a found suffix.

A run is keyed by (model identity, goal, target, the model's dtype, `GCGConfig.key_dict()`): the
settings that can change the result. The forward batch size, the prefix cache switch and the
checkpoint interval are left out (same losses), so re-running with another `--batch-size` reuses the
run. Threads and device are not settings at all. Finished runs are rows of `gen_gcg_runs`; a run in
progress writes its `GCGState` (suffix, best suffix, losses, check outputs, the random generator's state)
to `gen_gcg_checkpoints` every `checkpoint_every` steps, and the same command resumes from there after an
interruption, ending exactly as an uninterrupted run would. The checkpoint is deleted in the transaction
that stores the finished run. Runs stored by 0.1.0 keep their old keys (which included the batch size):
they are listed, not reused.

`generate_by_gcg` turns a run into candidates. v1: the model answers goal + " " + suffix through the
ordinary (cached) backend path. v2: the reply is the check output the official script keeps (the last
that contains the target, else the last without a refusal phrase, else the last), generated from the
optimised token ids themselves, since the official template is not the model's chat rendering.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UserError
from ..models.base import ChatRequest, GenerationConfig, Message
from ..store import Store
from .candidates import CandidateStore
from .gcg import GCG, GCGConfig, GCGResult, GCGState, official_pick
from .methods import GenReport, add_from_replies, cached_generate
from .prompts import V1, gcg_goal, gcg_target, prompt_set


def model_dtype(hf_model: Any) -> str:
    return str(next(hf_model.model.parameters()).dtype).replace("torch.", "")


def run_key(identity: str, goal: str, target: str, dtype: str, cfg: GCGConfig) -> str:
    payload = json.dumps(
        {"model": identity, "goal": goal, "target": target, "dtype": dtype, "config": cfg.key_dict()},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


_RUN_COLS = "suffix, suffix_ids, best_loss, losses, success, refused, output, steps_run, seconds, checks"


def find_run(store: Store, key: str) -> GCGResult | None:
    row = store.conn.execute(f"SELECT {_RUN_COLS} FROM gen_gcg_runs WHERE key=?", (key,)).fetchone()
    if row is None:
        return None
    return GCGResult(
        row[0],
        json.loads(row[1]),
        row[2],
        json.loads(row[3]),
        bool(row[4]),
        bool(row[5]),
        row[6],
        row[7],
        row[8],
        json.loads(row[9]),
    )


def load_checkpoint(store: Store, key: str) -> GCGState | None:
    row = store.conn.execute("SELECT state, rng FROM gen_gcg_checkpoints WHERE key=?", (key,)).fetchone()
    if row is None:
        return None
    return GCGState(**json.loads(row[0]), rng=bytes(row[1]))


def _state_json(state: GCGState) -> str:
    return json.dumps({k: v for k, v in asdict(state).items() if k != "rng"})


def optimise(
    store: Store,
    hf_model: Any,
    principle: int | None,
    goal: str,
    target: str,
    cfg: GCGConfig,
    log: Callable[[str], None] | None = None,
) -> tuple[str, GCGResult]:
    """(run key, result) for this model, goal, target and settings: from the store, else computed (resuming
    from a checkpoint when there is one) and stored."""
    hf_model.load()
    dtype = model_dtype(hf_model)
    key = run_key(hf_model.identity, goal, target, dtype, cfg)
    done = find_run(store, key)
    if done is not None:
        return key, done
    state = load_checkpoint(store, key)
    if state is not None and log:
        log(f"resuming GCG run {key[:12]} from its checkpoint at step {state.step}")
    head = (key, hf_model.identity, principle, goal, target, json.dumps(cfg.key_dict()), dtype)

    def on_step(s: GCGState, last: bool) -> None:
        if not last and s.step % cfg.checkpoint_every == 0:
            with store.transaction() as c:
                c.execute(
                    "INSERT OR REPLACE INTO gen_gcg_checkpoints VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (*head, s.step, _state_json(s), s.rng, s.seconds, time.time()),
                )

    res = GCG(hf_model, goal, target, cfg).run(state, on_step, log)
    with store.transaction() as c:
        c.execute(
            "INSERT OR IGNORE INTO gen_gcg_runs (key, model_identity, principle, goal, target, config, suffix, "
            "suffix_ids, best_loss, losses, success, output, steps_run, seconds, created_at, refused, checks, "
            "prompts_version, dtype) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                *head[:6],
                res.suffix,
                json.dumps(res.suffix_ids),
                res.best_loss,
                json.dumps(res.losses),
                int(res.success),
                res.output,
                res.steps_run,
                res.seconds,
                time.time(),
                int(res.refused),
                json.dumps(res.checks),
                cfg.version,
                dtype,
            ),
        )
        c.execute("DELETE FROM gen_gcg_checkpoints WHERE key=?", (key,))
    return key, res


@dataclass(frozen=True)
class GCGRunInfo:
    """One row of `generate gcg-runs`: a finished run or one waiting at a checkpoint."""

    key: str
    status: str  # done | checkpoint
    model: str
    principle: int | None
    prompts_version: str
    steps_run: int
    steps: int | None
    best_loss: float
    success: bool | None
    refused: bool | None
    suffix: str | None
    seconds: float
    at: float


def list_runs(store: Store) -> list[GCGRunInfo]:
    """Finished runs and checkpoints, oldest first."""
    out = []
    for r in store.conn.execute(
        "SELECT key, model_identity, principle, prompts_version, steps_run, config, best_loss, "
        "success, refused, suffix, seconds, created_at FROM gen_gcg_runs"
    ):
        steps = json.loads(r[5]).get("steps")
        out.append(
            GCGRunInfo(
                r[0],
                "done",
                r[1],
                r[2],
                r[3],
                r[4],
                steps,
                r[6],
                bool(r[7]),
                None if r[8] is None else bool(r[8]),
                r[9],
                r[10],
                r[11],
            )
        )
    for r in store.conn.execute(
        "SELECT key, model_identity, principle, config, step, state, seconds, updated_at FROM gen_gcg_checkpoints"
    ):
        cfg, state = json.loads(r[3]), json.loads(r[5])
        out.append(
            GCGRunInfo(
                r[0],
                "checkpoint",
                r[1],
                r[2],
                cfg.get("version", V1),
                r[4],
                cfg.get("steps"),
                state["best_loss"],
                None,
                None,
                None,
                r[6],
                r[7],
            )
        )
    return sorted(out, key=lambda x: x.at)


def generate_by_gcg(
    store: Store,
    hf_model: Any,
    principle: int,
    cfg: GCGConfig,
    *,
    goal: str | None = None,
    target: str | None = None,
    goal_set: str | None = None,
    goals_file: Any = None,
    max_new_tokens: int = 512,
    log: Callable[[str], None] | None = None,
) -> tuple[GCGResult, GenReport]:
    """Optimise (or reuse) the suffix for `principle` (or the given goal/target), then store the requests
    the model lists with it (see module docstring)."""
    from . import prompts_official as official

    if cfg.version == V1:
        if goal_set or goals_file:
            raise UserError("--goals / --goal-set choose official goals; drop --prompts-version msb-gen-v1")
        default = (gcg_goal(principle), gcg_target(principle))
    else:
        g = official.goal_for(principle, goal_set or official.GCG_SETTINGS["goal_set"], goals_file)
        default = (g.goal, g.target)
    goal, target = goal or default[0], target or default[1]
    if not target:
        raise UserError("GCG needs a target: give --target or a goals file with a 'target' for this principle")
    key, res = optimise(store, hf_model, principle, goal, target, cfg, log)
    report = GenReport()
    cands = CandidateStore(store)
    if cfg.version == V1:
        request = ChatRequest(
            (Message("user", f"{goal} {res.suffix}"),), GenerationConfig(max_new_tokens=max_new_tokens)
        )
        replies = asyncio.run(cached_generate(store, hf_model, [request], report))
        keys = [request.cache_key(hf_model.identity)]
    else:
        replies = [
            res.checks[official_pick(res.checks, target, prompt_set(cfg.version).refusal_prefixes)]["output"]
            if res.checks
            else None
        ]
        keys = [f"gcg:{key}"]
    add_from_replies(
        cands,
        replies,
        keys,
        principle=principle,
        method="gcg",
        generator=hf_model.identity,
        seeds=[cfg.seed],
        report=report,
        version=cfg.version,
        suffix=res.suffix,
    )
    return res, report
