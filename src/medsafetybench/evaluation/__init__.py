"""The evaluation engine: items -> responses -> judgements -> summaries, through the store.

- `tasks`: what to evaluate (`ItemSelection`, the named safety tasks) and loading its items.
- `pipeline`: `EvalSettings`, run identity, and `evaluate_run` (respond, judge, summarise; resumable).
- `stages`: the streamed respond and judge stages joined by a bounded queue.
- `preflight`: spec and context-length checks made before anything is called or written.
- `provenance`: what produced a run (package, data and prompt versions) for reports.
- `export`: JSONL / CSV / Parquet views of a run.
"""
