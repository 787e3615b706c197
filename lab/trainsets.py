"""Readers of the public human-labelled judge sets (never shipped: callers pass the shared data folder)
and their mapping onto "harmful response" (score >= 4) versus harmless.

Used by the offline judge's trainer (`tools/train_offline_judge.py`), its bench and the refusal
detector's bench. The mapping follows `judge-train/README.md`; where it leaves a choice, the choice
made here is stated beside the reader:

- `gptfuzz`: label 1 -> harmful, 0 -> harmless; request = the bare question (the jailbreak template
  is not recorded). Group: the question.
- `openai-rbr-gold`: harmful iff `propositions.disallowed_content`; everything else harmless
  (the README's "borderline 2-3" rows are below 4, so harmless in the binary). Request = the last
  user message. Group: the prompt.
- `dices`: crowd share of "Yes" (= unsafe) >= 0.5 -> harmful, else harmless, for the 350 and the 990
  conversations alike (the expert 350 label calls half of them unsafe, which the README reads as
  mostly 3s). Request = the conversation, one turn a line. Group: set and conversation id.
- `medicheck`: response code 0, 1, X, and 2 on non-critical queries -> harmless. Code 3 (treatment
  or diagnosis) on serious or critical queries, which the README proposes as harmful, is left out
  with the README's other borderline rows: a diagnosis for a benign medical question is not the
  harm this judge measures (MedSafetyBench: fulfilling a harmful request), and teaching it so would
  repeat v1's "helpful answer = harmful" error. Unlabelled responses are left out. Group: the query.
- `diasafety`: Unauthorized Expertise rows dropped (README); Unsafe -> harmful, Safe -> harmless.
  Request = the context. Group: the context.
- `harmbench-val` (the development set, `judge-dev/`): human majority, read through
  `judging.labelled.load_labelled` so the request is composed exactly as `judge-agreement` composes
  it. Group: the behaviour id.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medsafetybench.errors import UserError

TRAIN_SOURCES = ("gptfuzz", "openai-rbr-gold", "dices", "medicheck", "diasafety")
DEV_SOURCE = "harmbench-val"
ALL_SOURCES = (*TRAIN_SOURCES, DEV_SOURCE)


@dataclass(frozen=True)
class LabelledPair:
    """One (request, response) pair with a binary human label."""

    request: str
    response: str
    label: int
    """1 = harmful response (score >= 4), 0 = harmless."""
    source: str
    group: str
    """Rows sharing a group never straddle a train/test split."""


def _need(path: Path) -> Path:
    if not path.exists():
        raise UserError(f"{path} not found: pass --data pointing at the shared data folder")
    return path


def _csv(path: Path) -> list[dict[str, str]]:
    with _need(path).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def gptfuzz(data: Path) -> list[LabelledPair]:
    root = data / "judge-train" / "gptfuzz" / "datasets"
    questions = {r["index"]: r["text"] for r in _csv(root / "questions" / "question_list.csv")}
    out = []
    for name in ("train.csv", "evaluate.csv"):
        for r in _csv(root / "responses_labeled" / name):
            out.append(
                LabelledPair(
                    questions[r["question"]], r["Response"], int(r["label"]), "gptfuzz", f"gptfuzz:q{r['question']}"
                )
            )
    return out


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in _need(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def rbr_rows(data: Path) -> list[tuple[str, dict]]:
    """(split, row) for every OpenAI RBR gold row."""
    root = data / "judge-train" / "openai-rbr-gold" / "data" / "rbr_gold_data"
    return [(split, r) for split in ("train", "test") for r in _jsonl(root / f"{split}.jsonl")]


def rbr_gold(data: Path) -> list[LabelledPair]:
    out = []
    for _, r in rbr_rows(data):
        request = next(m["content"] for m in reversed(r["prompt"]) if m["role"] == "user")
        group = "rbr:" + json.dumps(r["prompt"], sort_keys=True)[:2000]
        out.append(
            LabelledPair(
                request,
                r["completion"][-1]["content"],
                int(bool(r["propositions"]["disallowed_content"])),
                "openai-rbr-gold",
                group,
            )
        )
    return out


def rbr_refused(row: dict) -> bool:
    """RBR gold's refusal reading of a completion: it fulfils no part of the request
    (`partially_complies` and `fully_complies` false) and does not just ask for more information."""
    p = row["propositions"]
    return not (p["partially_complies"] or p["fully_complies"])


def _turns(prompt: str) -> str:
    return prompt.replace("\\n", "\n").strip()


def dices(data: Path) -> list[LabelledPair]:
    root = data / "judge-train" / "dices" / "judge-bench" / "data" / "dices"
    out = []
    for name, tag in (("dices_350_crowdsourced.json", "dices350"), ("dices_990.json", "dices990")):
        for inst in json.loads(_need(root / name).read_text(encoding="utf-8"))["instances"]:
            votes = inst["annotations"]["safety"]["individual_human_scores"]
            share = sum(v == "Yes" for v in votes) / len(votes)
            out.append(
                LabelledPair(
                    _turns(inst["instance"]["user_prompt"]),
                    inst["instance"]["response"],
                    int(share >= 0.5),
                    "dices",
                    f"{tag}:{inst['id']}",
                )
            )
    return out


def medicheck(data: Path) -> list[LabelledPair]:
    out = []
    for i, r in enumerate(_csv(data / "judge-train" / "medicheck" / "data" / "medicheck-expert.csv")):
        query_code = r["query-label-expert"].strip()
        for col in ("response-dialogpt", "response-alexa", "response-reddit "):
            code = r[f"{col.strip()}-label-expert"].strip()
            text = r[col]
            if not code or not text.strip():
                continue
            if code == "3" and query_code in ("1", "2", "3"):
                continue  # borderline (code 3 on a non-serious query) or the left-out "harmful" reading
            if code == "2" and query_code == "3":
                continue  # borderline per the README
            out.append(LabelledPair(r["query"], text, 0, "medicheck", f"medicheck:{i}"))
    return out


def diasafety(data: Path) -> list[LabelledPair]:
    root = data / "judge-train" / "diasafety" / "DiaSafety_dataset"
    out = []
    for split in ("train", "val", "test"):
        for r in json.loads(_need(root / f"{split}.json").read_text(encoding="utf-8")):
            if r["category"] == "Unauthorized Expertise":
                continue
            out.append(
                LabelledPair(
                    r["context"],
                    r["response"],
                    int(r["label"] == "Unsafe"),
                    "diasafety",
                    f"diasafety:{r['context'][:500]}",
                )
            )
    return out


def harmbench_val(data: Path) -> list[LabelledPair]:
    from medsafetybench.labels.labelled import load_labelled

    path = _need(data / "judge-dev" / "harmbench_val" / "harmbench_val_flat.jsonl")
    return [
        LabelledPair(c.case.request, c.case.response, int(c.label), DEV_SOURCE, "hb:" + c.id.split("#")[0])
        for c in load_labelled(path)
    ]


def msb_safe_responses(data: Path, split: str) -> list[LabelledPair]:
    """MedSafetyBench (harmful request, reference safe response) pairs of one release split ("train" =
    MedSafety-Improve, "test" = MedSafety-Eval), label 0, in release order."""
    root = Path(data) / "med-safety-bench" / "datasets" / split
    files = sorted(_need(root).glob("*/med_safety_demonstrations_category_*.csv"))
    if not files:
        raise UserError(f"no MedSafetyBench CSVs under {root}: pass --data pointing at the shared data folder")
    out = []
    for f in files:
        for i, r in enumerate(_csv(f)):
            out.append(
                LabelledPair(
                    r["harmful_medical_request"],
                    r["safe_response"],
                    0,
                    f"msb-{split}",
                    f"msb:{split}:{f.parent.name}:{f.stem}:{i}",
                )
            )
    return out


READERS: dict[str, Callable[[Path], list[LabelledPair]]] = {
    "gptfuzz": gptfuzz,
    "openai-rbr-gold": rbr_gold,
    "dices": dices,
    "medicheck": medicheck,
    "diasafety": diasafety,
    DEV_SOURCE: harmbench_val,
}


def load_source(data: str | Path, name: str) -> list[LabelledPair]:
    """Every labelled pair of one source (`ALL_SOURCES`)."""
    if name not in READERS:
        raise UserError(f"unknown judge data source {name!r}: use one of {', '.join(ALL_SOURCES)}")
    return READERS[name](Path(data).expanduser())
