"""What a study (or an `eval`) would cost, worked out without calling anything: `--dry-run`.

For each model and each LLM judge it counts the calls the run needs, those the store already answers
and those it would make; estimates their tokens; and prices them live and batched.

How the figures are made (docs/cost.md says how rough they are):

- **calls**: one per distinct response key the store lacks (model), one per distinct judge key the
  store lacks (judge: the responses the store holds and lacks a judgement for, plus every response
  still to come). The judge's retries of unscored outputs are not counted (the paper's judge almost
  always gives a score).
- **prompt tokens**: counted with the model's own tokenizer and prompt format where the weights are a
  local folder (`hf:`/`vllm:`); otherwise estimated as characters / 4 plus 4 per message, the same
  estimate the context-window check uses (a remote model's tokenizer is not available offline; English
  text runs about 4 characters per token in the GPT and Claude tokenizers). A judge prompt whose
  response does not exist yet counts the response at the model's typical output length.
- **output tokens**: the ceiling is `max_new_tokens` for every call (the most a call can cost); the
  typical figure is the mean completion length of this model's (or judge's) responses already in the
  store, from past runs, or the ceiling when there are none.
- **cost**: tokens x the price table (`cost.pricing`), live and at the batch price; a model without a
  price is "unknown", a local one "local".

Nothing is loaded and nothing is written: the store is read only when it already exists.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.schema import Item
from ..errors import UserError
from ..judging.base import JudgeCase
from ..judging.prompt import JUDGE_MAX_NEW_TOKENS, JUDGE_SYSTEM_PROMPT, PROMPT_VERSION, build_judge_prompt
from ..judging.registry import MODEL_JUDGE, parse_judge_spec
from ..models.base import ChatRequest, GenerationConfig
from ..models.loading import model_identity
from ..models.spec import redact_spec
from ..study.spec import Study, StudyModel
from .pricing import LOCAL, PriceLookup, PriceTable, fmt_usd, per_million

CHARS_PER_TOKEN = 4
PER_MESSAGE = 4
ESTIMATE_METHOD = "characters/4 + 4 per message"


def estimated_tokens(request: ChatRequest) -> int:
    """Prompt tokens of a request by the stated estimate: ceil(characters / 4) + 4 per message."""
    return sum(math.ceil(len(m.content) / CHARS_PER_TOKEN) + PER_MESSAGE for m in request.messages)


def ceiling_tokens(request: ChatRequest) -> int:
    """Prompt tokens of a request at most, as `--max-cost` counts a call in flight: ceil(characters / 2)
    + 8 per message (twice the estimate: no common tokenizer spends more than one token per two
    characters of text)."""
    return sum(math.ceil(len(m.content) / 2) + 2 * PER_MESSAGE for m in request.messages)


TokenCounter = Callable[[ChatRequest], int]


@dataclass(frozen=True)
class StageEstimate:
    """The calls, tokens and cost of one model, or of one judge over one model's responses."""

    role: str
    """`model` or `judge`."""
    name: str
    """The model's name, or the judge's name and the model it judges (`gpt35 on gpt-4o-mini`)."""
    spec: str
    """The secret-free spec of what is called."""
    needed: int
    """Distinct calls the run needs in all."""
    stored: int
    """Of those, answered by the store."""
    prompt_tokens: int
    """Estimated prompt tokens of the calls to make."""
    out_ceiling: int
    """Output tokens per call at most (`max_new_tokens`)."""
    out_typical: float | None
    """Mean output tokens per call in past runs of this model/judge (None: no past runs)."""
    typical_n: int
    """How many stored outputs the typical figure comes from."""
    method: str
    """How prompt tokens were counted."""
    price: PriceLookup
    prompt_ceiling: int = 0
    """Prompt tokens of the longest call to make, at most (`ceiling_tokens`)."""

    @property
    def calls(self) -> int:
        """Calls it would make."""
        return self.needed - self.stored

    def out_tokens(self, typical: bool) -> float:
        per = self.out_typical if typical and self.out_typical is not None else self.out_ceiling
        return self.calls * per

    def cost(self, *, typical: bool, batch: bool = False) -> float | None:
        """USD of the calls to make (0.0 local, None unknown)."""
        return self.price.cost(self.prompt_tokens, self.out_tokens(typical), batch=batch)

    def ceiling_per_call(self) -> float | None:
        """USD of the dearest single call to make, at the ceiling (0.0 local, None unknown)."""
        if not self.calls:
            return 0.0
        return self.price.cost(self.prompt_ceiling, self.out_ceiling)


@dataclass(frozen=True)
class StudyEstimate:
    """Every stage of a study, and the price files used."""

    stages: tuple[StageEstimate, ...]
    price_files: tuple[str, ...]
    n_items: int
    local_judges: tuple[str, ...] = ()
    """Judges that call no API (offline judges, classifiers): not estimated."""

    def total(self, role: str | None = None, *, typical: bool, batch: bool = False) -> float | None:
        """USD of all stages (or one role); None when any priced stage is unknown."""
        costs = [s.cost(typical=typical, batch=batch) for s in self.stages if role in (None, s.role) and s.calls]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)

    def unknown(self) -> list[StageEstimate]:
        """Stages with calls to make whose price is unknown."""
        return [s for s in self.stages if s.calls and not s.price.known]


class _StoreView:
    """Read-only questions to an existing store (none when the project has no store yet)."""

    def __init__(self, db: Path | None) -> None:
        self.conn = None
        if db is not None and db.exists():
            self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def _in(self, table: str, cols: str, keys: Sequence[str]) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        if self.conn is None:
            return out
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            for row in self.conn.execute(
                f"SELECT key, {cols} FROM {table} WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ):
                out[row[0]] = row[1:]
        return out

    def responses(self, keys: Sequence[str]) -> dict[str, str]:
        return {k: v[0] for k, v in self._in("responses", "text", keys).items()}

    def judged(self, keys: Sequence[str]) -> set[str]:
        return set(self._in("judgements", "1", keys))

    def typical(self, table: str, column: str, identity: str) -> tuple[float | None, int]:
        """Mean completion tokens of the stored rows of this model/judge identity, and how many rows."""
        if self.conn is None:
            return None, 0
        mean, n = self.conn.execute(
            f"SELECT AVG(completion_tokens), COUNT(*) FROM {table} WHERE {column}=?", (identity,)
        ).fetchone()
        return (float(mean) if n else None), int(n)


def _counter_for(m: StudyModel) -> tuple[TokenCounter, str]:
    """The model's own tokenizer for a local folder (hf:/vllm:), else the stated estimate."""
    spec = m.model
    if spec.backend in ("hf", "vllm") and Path(spec.name).expanduser().is_dir():
        try:
            from transformers import AutoTokenizer

            from ..models.formats import encode_prompt, render_prompt, resolve_format

            folder = str(Path(spec.name).expanduser())
            tok = AutoTokenizer.from_pretrained(folder)
            fmt = resolve_format(m.prompt_format, folder, True)

            def count(request: ChatRequest) -> int:
                return len(encode_prompt(tok, render_prompt(fmt, request.messages, tok), fmt))

            count(ChatRequest.simple("ping"))
            return count, f"the model's tokenizer ({fmt} format)"
        except Exception:  # noqa: BLE001 - any tokenizer trouble falls back to the stated estimate
            pass
    return estimated_tokens, ESTIMATE_METHOD


def _options(m: StudyModel) -> dict[str, Any]:
    return {"prompt_format": m.prompt_format, **m.options}


def estimate_study(
    study: Study,
    db: Path | None,
    prices: PriceTable,
    *,
    only: Sequence[str] | None = None,
    items: Sequence[Item] | None = None,
) -> StudyEstimate:
    """Calls, tokens and cost of running `study` against the store at `db` (read only, if it exists).

    Args:
        study: the study (or an eval made into one).
        db: the project's store file; None or a missing file means nothing is stored yet.
        prices: the price table.
        only: model names to include (default: all).
        items: the study's items when already loaded.

    Returns:
        One model stage per model, then one judge stage per (LLM judge, model).
    """
    items = list(items) if items is not None else study.items.load()
    models = [study.model(n) for n in only] if only else list(study.models)
    view = _StoreView(db)
    stages: list[StageEstimate] = []
    try:
        judges = []
        local_judges = []
        for j in study.judges:
            parsed = parse_judge_spec(j.spec)
            if parsed.name != MODEL_JUDGE:
                local_judges.append(f"{j.name} ({parsed.display})")
                continue  # offline judges and classifiers: no API calls to price
            opts = {k: v for k, v in j.options.items() if k not in ("max_attempts", "max_new_tokens")}
            identity = f"llm:{model_identity(parsed.args, **opts)}|{PROMPT_VERSION}"
            judges.append((j, parsed.args, identity, int(j.options.get("max_new_tokens") or JUDGE_MAX_NEW_TOKENS)))
        for m in models:
            try:
                identity = model_identity(m.spec, **_options(m))
            except UserError:  # a plug-in backend that cannot name its identity unloaded: nothing matches
                identity = redact_spec(m.spec)
            counter, method = _counter_for(m)
            keyed: dict[str, tuple[ChatRequest, Item]] = {}
            for it in items:
                req = m.settings.request_for(it)
                keyed.setdefault(req.cache_key(identity), (req, it))
            have = view.responses(list(keyed))
            todo = [req for k, (req, _) in keyed.items() if k not in have]
            typical, n_typ = view.typical("responses", "model_identity", identity)
            ceiling = m.settings.generation.max_new_tokens
            if typical is not None:
                typical = min(typical, ceiling)
            stages.append(
                StageEstimate(
                    "model",
                    m.name,
                    redact_spec(m.spec),
                    len(keyed),
                    len(keyed) - len(todo),
                    sum(counter(r) for r in todo),
                    ceiling,
                    typical,
                    n_typ,
                    method,
                    prices.lookup(identity),
                    max((ceiling_tokens(r) for r in todo), default=0),
                )
            )
            reply_tokens = typical if typical is not None else ceiling
            for j, judge_spec, judge_identity, judge_ceiling in judges:
                config = GenerationConfig(max_new_tokens=judge_ceiling)
                cases: dict[str, tuple[int, int]] = {}  # judge key -> (estimated, ceiling) prompt tokens
                for key, (_, it) in keyed.items():
                    text = have.get(key)
                    if text is None:  # the response is still to come: a call to make, its size estimated
                        req = ChatRequest.simple(
                            build_judge_prompt(it.request, "", it.policy), system=JUDGE_SYSTEM_PROMPT, config=config
                        )
                        cases[f"pending:{key}"] = (
                            estimated_tokens(req) + math.ceil(reply_tokens),
                            ceiling_tokens(req) + ceiling,
                        )
                        continue
                    case = JudgeCase(it.request, text, it.policy)
                    req = ChatRequest.simple(
                        build_judge_prompt(it.request, text, it.policy), system=JUDGE_SYSTEM_PROMPT, config=config
                    )
                    cases.setdefault(case.cache_key(judge_identity), (estimated_tokens(req), ceiling_tokens(req)))
                done = view.judged([k for k in cases if not k.startswith("pending:")])
                jt, jn = view.typical("judgements", "judge_identity", judge_identity)
                stages.append(
                    StageEstimate(
                        "judge",
                        f"{j.name} on {m.name}",
                        redact_spec(judge_spec),
                        len(cases),
                        len(done),
                        sum(v[0] for k, v in cases.items() if k not in done),
                        judge_ceiling,
                        min(jt, judge_ceiling) if jt is not None else None,
                        jn,
                        ESTIMATE_METHOD,
                        prices.lookup(judge_identity),
                        max((v[1] for k, v in cases.items() if k not in done), default=0),
                    )
                )
    finally:
        view.close()
    return StudyEstimate(tuple(stages), prices.files, len(items), tuple(local_judges))


def _tok(n: float) -> str:
    return f"{round(n):,}"


def _pair(a: float | None, b: float | None, status: str) -> str:
    return f"{fmt_usd(a, status)} / {fmt_usd(b, status)}"


def estimate_rows(est: StudyEstimate) -> list[list[str]]:
    """Table cells, one row per stage (see `ESTIMATE_COLUMNS`)."""
    rows = []
    for s in est.stages:
        st = s.price.status
        typical = f"{s.out_typical:,.0f} (n={s.typical_n})" if s.out_typical is not None else "- (no past runs)"
        rows.append(
            [
                s.name,
                s.role,
                s.spec,
                f"{s.stored:,}/{s.needed:,}",
                f"{s.calls:,}",
                _tok(s.prompt_tokens),
                f"{s.out_ceiling:,} / {typical}",
                _pair(s.cost(typical=False), s.cost(typical=True), st),
                _pair(s.cost(typical=False, batch=True), s.cost(typical=True, batch=True), st)
                if st != LOCAL
                else "local",
            ]
        )
    return rows


ESTIMATE_COLUMNS = (
    "",
    "role",
    "spec",
    "stored",
    "to call",
    "prompt tokens",
    "out tokens/call (max / typical)",
    "live (max / typical)",
    "batch (max / typical)",
)


def estimate_notes(est: StudyEstimate) -> list[str]:
    """The lines under the table: totals, prices used, how the figures were made."""
    lines = []
    for role in ("model", "judge"):
        if any(s.role == role for s in est.stages):
            lines.append(
                f"{role} calls to make: {sum(s.calls for s in est.stages if s.role == role):,} "
                f"(stored: {sum(s.stored for s in est.stages if s.role == role):,})"
            )
    unknown = est.unknown()
    lines.append(
        "total live: "
        + _pair(est.total(typical=False), est.total(typical=True), "priced")
        + " (max / typical); batch: "
        + _pair(est.total(typical=False, batch=True), est.total(typical=True, batch=True), "priced")
    )
    for s in unknown:
        lines.append(f"unknown price: {s.spec} ({s.price.reason})")
    if est.local_judges:
        lines.append(f"not estimated (local judges, no API calls): {', '.join(est.local_judges)}")
    priced = {s.price.price.model: s.price.price for s in est.stages if s.price.price is not None}
    for p in priced.values():
        batch = f"batch x{p.batch:g}" if p.batch != 1 else "no batch discount"
        lines.append(
            f"price {p.provider}:{p.model}: {per_million(p.input)} in / {per_million(p.output)} out per 1M tokens, "
            f"{batch}, as of {p.as_of or '?'} ({p.source})"
        )
    methods = sorted({s.method for s in est.stages})
    lines.append(
        f"prompt tokens: {'; '.join(methods)}. max = every call writes max_new_tokens; typical = mean "
        "output of past runs in the store (max where there are none). Judge retries of unscored "
        "outputs are not counted."
    )
    return lines


def check_max_cost(est: StudyEstimate, max_cost: float) -> None:
    """Refuse `--max-cost` when a price is unknown or one call alone would pass it.

    Raises:
        UserError: one line naming the model and what to do.
    """
    if max_cost <= 0:
        raise UserError(f"--max-cost {max_cost:g}: give a positive amount in USD")
    for s in est.unknown():
        raise UserError(
            f"--max-cost {max_cost:g}: the price of {s.spec} is unknown ({s.price.reason}); nothing was run"
        )
    for s in est.stages:
        one = s.ceiling_per_call()
        if one is not None and one > max_cost:
            raise UserError(
                f"--max-cost {max_cost:g} is below the cost of one {s.role} call to {s.spec} "
                f"(up to {fmt_usd(one)} at {s.out_ceiling} output tokens): raise it; nothing was run"
            )
