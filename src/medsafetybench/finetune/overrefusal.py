"""Over-refusal: the share of benign medical questions a model refuses (safety tuning that refuses
everything is not safety; the paper does not measure it).

`load_benign_questions(...)` gives the benign set: a user file (CSV / JSONL / JSON with a question or
request column, read by `load_user_file`), or by default question stems from a local medical-QA copy
(MedQA USMLE test `questions` without the options and PubMedQA PQA-L test questions without the
abstract), asked as open questions, half from each, in file order. The folder comes from the argument
or env `MEDSAFETYBENCH_MEDQA_DATA` (layout of ../shared/data/medqa).

`over_refusal(store, model, items, ...)` asks the model through the pipeline's `plan_run`/`respond_stage`
(so responses are cached in the store like every other response; the run's judge identity is
`refusal-detector`), then applies the project's refusal detector (`judging.refusal.is_refusal`).
An empty (whitespace-only) answer is no refusal and no answer: it is counted apart, as `empty`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.schema import Item
from ..data.userfiles import jsonl_rows, load_user_file
from ..errors import UserError
from ..evaluation.pipeline import EvalSettings, Progress, plan_run, respond_stage
from ..medqa.tasks import TASKS
from ..metrics import Estimate, bootstrap_mean
from ..metrics.refusal import DETECTOR_VERSION, is_refusal
from ..models.base import ChatModel
from ..store import Store

ENV_MEDQA = "MEDSAFETYBENCH_MEDQA_DATA"  # the same folder as `medsafety medqa` reads
DEFAULT_N_BENIGN = 200
REFUSAL_JUDGE_IDENTITY = "refusal-detector"
DETECTOR = f"judging.refusal.is_refusal ({DETECTOR_VERSION})"  # stored with every over-refusal figure
MEDQA_FILE = TASKS["medqa"].files[0]  # the same file `medsafety medqa` reads
PUBMEDQA_FILE = "pubmedqa/pqal_test_500.jsonl"


def _read_jsonl(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the medical QA file ({exc})") from None
    return [record for _, record in jsonl_rows(path, text)]


def _stem(question: str) -> str:
    return " ".join(question.split())


def load_benign_questions(
    path: str | Path | None = None, *, medqa_dir: str | Path | None = None, limit: int = DEFAULT_N_BENIGN
) -> list[Item]:
    """Benign medical questions (see module docstring); at most `limit` of them."""
    if limit < 1:
        raise UserError(f"--benign-limit must be at least 1 (got {limit})")
    if path is not None:
        items = load_user_file(path)[:limit]
        return [
            Item(id=f"benign/{it.id}", split="user", source="benign", principle=None, request=it.request)
            for it in items
        ]
    root = medqa_dir or os.environ.get(ENV_MEDQA)
    if not root:
        raise UserError(
            f"over-refusal needs benign questions: pass --benign FILE or --medqa-dir (or set {ENV_MEDQA}) "
            "pointing to a folder with MedQA/PubMedQA"
        )
    root = Path(root).expanduser()
    medqa, pubmed = root / MEDQA_FILE, root / PUBMEDQA_FILE
    if not medqa.is_file() and not pubmed.is_file():
        raise UserError(f"{root}: neither {MEDQA_FILE} nor {PUBMEDQA_FILE} found; pass --benign FILE instead")
    sets: list[list[Item]] = []
    if medqa.is_file():
        sets.append(
            [
                Item(
                    id=f"benign/medqa/{k:04d}",
                    split="user",
                    source="medqa",
                    principle=None,
                    request=_stem(r["question"]),
                )
                for k, r in enumerate(_read_jsonl(medqa))
            ]
        )
    if pubmed.is_file():
        sets.append(
            [
                Item(
                    id=f"benign/pubmedqa/{r.get('pmid', k)}",
                    split="user",
                    source="pubmedqa",
                    principle=None,
                    request=_stem(r["question"]),
                )
                for k, r in enumerate(_read_jsonl(pubmed))
            ]
        )
    per = -(-limit // len(sets))
    items = [it for s in sets for it in s[:per]][:limit]
    return items


@dataclass(frozen=True)
class OverRefusal:
    run_id: str
    n: int  # questions with a response
    refused: int
    rate: Estimate  # share refused (of all n), with a bootstrap interval
    detector: str
    empty: int = 0  # whitespace-only answers: neither refused nor answered

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "n": self.n,
            "refused": self.refused,
            "empty": self.empty,
            "rate": self.rate.value,
            "low": self.rate.low,
            "high": self.rate.high,
            "detector": self.detector,
        }


async def over_refusal(
    store: Store,
    model: ChatModel,
    items: Sequence[Item],
    *,
    model_spec: str,
    settings: EvalSettings | None = None,
    progress: Progress | None = None,
    seed: int = 0,
) -> OverRefusal:
    """Ask `model` the benign `items` (cached in the store) and measure the share it refuses."""
    settings = settings or EvalSettings()
    run_id = plan_run(
        store,
        items,
        model_spec=model_spec,
        model_identity=model.identity,
        judge_identity=REFUSAL_JUDGE_IDENTITY,
        settings=settings,
        kind="overrefusal",
    )
    await respond_stage(store, run_id, model, progress)
    texts = [r.response for r in store.run_rows(run_id) if r.response is not None]
    empty = [not t.strip() for t in texts]
    flags = [refused and not blank for refused, blank in zip(is_refusal(texts), empty, strict=True)]
    return OverRefusal(
        run_id,
        len(texts),
        int(sum(flags)),
        bootstrap_mean([float(f) for f in flags], seed=seed),
        DETECTOR,
        empty=int(sum(empty)),
    )
