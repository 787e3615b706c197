"""What `eval` and `study run` say when they finish: JSON a script can trust (versions, data digests,
settings, identities, one summary per judge), the CI gate (`--fail-above`) and the exit status.

Exit status (documented in the README):
    0  every item answered and judged (and under the gate, when one is given)
    1  some model or judge requests failed for good (re-run the same command to retry only those; when
       the server rejects them as sent, e.g. longer than its context window, the note says what to
       change), or a model of a study could not be loaded
    2  a usage error (bad option, file or spec): nothing was run
    3  the gate failed: a primary-judge harmfulness or harmful share above --fail-above
    4  nothing could be scored: every judged item came back unscored (or no item was judged)
    5  stopped at --max-cost before the spend would pass it (`cost.budget.EXIT_COST`; re-run to resume)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError
from ..models.spec import redact_spec
from ..store import Store
from .runner import ModelResult, StudyOutcome

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_GATE, EXIT_UNSCORED = 0, 1, 2, 3, 4
_STATUS = re.compile(r"HTTP (\d{3})\b")
_TOO_LONG = re.compile(r"context|too long|max_model_len|maximum.{0,40}tokens|reduce the length", re.IGNORECASE)


def failure_advice(errors: list[str]) -> str:
    """What to do about requests that failed for good: re-run when they may succeed another time; when
    every error is a client error the server will give again (HTTP 4xx but 408/409/429), what to change."""
    codes = [_STATUS.match(e) for e in errors]
    if not errors or not all(
        c and 400 <= int(c.group(1)) < 500 and int(c.group(1)) not in (408, 409, 429) for c in codes
    ):
        return "re-run the same command to retry only those"
    if all(_TOO_LONG.search(e) for e in errors):
        return (
            "the server rejects them as longer than its context window, so a re-run fails the same way: "
            "lower --max-new-tokens (prompt and new tokens must fit together), or shorten or drop those "
            "requests; --context-window N (the server's window) warns about them before sending"
        )
    return (
        "the server refuses them as sent, so a re-run fails the same way: change what the error names "
        "(the model name, an option, the request)"
    )


@dataclass(frozen=True)
class Gate:
    """`--fail-above X` (mean harmfulness) or `--fail-above share:X` (harmful share)."""

    metric: str
    threshold: float

    @classmethod
    def parse(cls, text: str | None) -> Gate | None:
        if text is None:
            return None
        metric, _, value = text.rpartition(":")
        metric = metric or "harmfulness"
        if metric not in ("harmfulness", "share"):
            raise UserError(f"--fail-above {text!r}: give a number (mean harmfulness, 1-5) or share:X (0-1)")
        try:
            threshold = float(value)
        except ValueError:
            raise UserError(f"--fail-above {text!r}: {value!r} is not a number") from None
        lo, hi = (1.0, 5.0) if metric == "harmfulness" else (0.0, 1.0)
        if not lo <= threshold <= hi:
            raise UserError(f"--fail-above {text!r}: the {metric} threshold must be within {lo:g}-{hi:g}")
        return cls(metric, threshold)

    def exceeded(self, result: ModelResult) -> float | None:
        """The value that exceeds the threshold, or None."""
        if result.outcome is None:
            return None
        o = result.outcome.summary.overall
        value = o.harmfulness.value if self.metric == "harmfulness" else o.harmful_share.value
        return value if value is not None and value > self.threshold else None


def exit_status(outcome: StudyOutcome, gate: Gate | None) -> tuple[int, list[str]]:
    """The exit status and the lines that explain it."""
    notes = []
    for r in outcome.results:
        if r.error:
            notes.append(f"{r.model.name}: {r.error}")
        elif r.outcome and (r.outcome.responses.failed or r.outcome.judgements.failed):
            o = r.outcome
            first = (o.responses.errors + o.judgements.errors or ["unknown error"])[0]
            notes.append(
                f"{r.model.name}: {o.responses.failed + o.judgements.failed} request(s) failed for good "
                f"(first: {first}); {failure_advice(o.responses.errors + o.judgements.errors)}"
            )
    if notes:
        return EXIT_FAILED, notes
    for r in outcome.results:
        s = r.outcome.summary if r.outcome else None
        if s is not None and s.n_items and s.overall.n_scored == 0:
            notes.append(
                f"{r.model.name}: no item could be scored ({s.n_unscored} unscored, {s.n_unjudged} "
                "unjudged): check the judge (see `medsafety export` for its raw output); "
                "--retry-unscored asks it again"
            )
    if notes:
        return EXIT_UNSCORED, notes
    if gate is not None:
        for r in outcome.results:
            value = gate.exceeded(r)
            if value is not None:
                what = "mean harmfulness" if gate.metric == "harmfulness" else "harmful share"
                notes.append(f"{r.model.name}: {what} {value:.3f} is above --fail-above {gate.threshold:g}")
        if notes:
            return EXIT_GATE, notes
    return EXIT_OK, notes


def result_json(store: Store, result: ModelResult) -> dict:
    """One model's result for `--json`: identities, settings, provenance and one summary per judge."""
    if result.outcome is None:
        return {"name": result.model.name, "model": redact_spec(result.model.spec), "error": result.error}
    o = result.outcome
    info = store.run(o.run_id)
    return {
        "run_id": o.run_id,
        "name": result.model.name,
        "model": info.model_spec,
        "model_identity": info.model_identity,
        "judge": info.judge_identity,
        "judges": list(o.summaries),
        "settings": info.settings,
        "items": info.provenance.get("items"),
        "n_items": info.n_items,
        "items_digest": info.items_digest,
        "settings_digest": info.settings_digest,
        "provenance": info.provenance,
        "model_calls": o.responses.calls,
        "judge_calls": o.judgements.calls,
        "failed": o.responses.failed + o.judgements.failed,
        "calls": {
            "model": o.responses.to_dict(),
            "judge": o.judgements.to_dict(),
            "by_judge": {k: v.to_dict() for k, v in o.by_judge.items()},
        },
        "summary": o.summary.to_dict(),
        "summaries": {k: v.to_dict() for k, v in o.summaries.items()},
    }
