"""Training data for safety fine-tuning: which demonstrations, from where, and the overlap guard.

`resolve_training_data(kind, n, ...)` returns the Alpaca records ({instruction, input, output}) to
train on, with where they came from and the SHA-256 of their canonical JSON:

- kind med / gen / both with an `n` the paper used: the official `train-splits-used-for-ft` file
  (`load_ft_split`), exactly as the paper trained;
- any other `n`: a seeded sample of MedSafety-Improve (med), of the general-safety demonstrations
  (gen: the largest official gen file, 900), or half of each (both);
- `data_file`: any Alpaca JSON (a list) or JSONL file, all records or a seeded sample of `n`.

`check_no_eval_overlap(records, ...)` refuses training data whose normalised request text matches a
MedSafety-Eval request: fine-tuning draws on MedSafety-Improve and user data, evaluation on
MedSafety-Eval, and a model must never be trained on the items it is scored on.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from ..data import load_ft_split, load_official, resolve_data_dir
from ..data.official import FT_KINDS, load_manifest
from ..errors import UserError

DATA_KINDS = FT_KINDS  # med, gen, both


@dataclass(frozen=True)
class TrainingData:
    """The records to train on and where they came from."""

    kind: str  # med, gen, both, or "file" for --data-file
    n: int
    records: list[dict]
    origin: str  # e.g. "official:ft_safety_med_n100.json", "sample:improve(seed=0)", "file:/path"
    source_file: str | None  # the file read (official split file or user file), when there is one
    sha256: str  # of canonical_json(records): what was trained on, byte for byte

    def to_json(self) -> str:
        return canonical_json(self.records)


def canonical_json(records: list[dict]) -> str:
    return json.dumps(records, ensure_ascii=False, indent=1) + "\n"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def official_ns(kind: str) -> list[int]:
    """The n of the official fine-tuning split files of `kind` (from the shipped manifest)."""
    pattern = re.compile(rf"train-splits-used-for-ft/{kind}_safety/ft_safety_{kind}_n(\d+)\.json")
    return sorted(int(m.group(1)) for rel in load_manifest() if (m := pattern.fullmatch(rel)))


def _check_kind(kind: str) -> str:
    if kind not in DATA_KINDS:
        raise UserError(
            f"--train-data '{kind}' is unknown: use med (MedSafety-Improve), gen (general safety "
            "demonstrations) or both"
        )
    return kind


def _sample(records: list[dict], n: int, seed: int, what: str) -> list[dict]:
    if n < 1:
        raise UserError(f"--n must be at least 1 (got {n})")
    if n > len(records):
        raise UserError(f"--n {n} is larger than the {len(records)} records of {what}; use --n {len(records)} or fewer")
    if n == len(records):
        return list(records)
    idx = sorted(random.Random(seed).sample(range(len(records)), n))
    return [records[i] for i in idx]


def improve_records(data_dir: str | Path | None = None) -> list[dict]:
    """MedSafety-Improve (900) as Alpaca records: request -> reference safe response."""
    return [
        {"instruction": it.request, "input": "", "output": it.safe_response or ""}
        for it in load_official("improve", data_dir=data_dir)
    ]


def read_alpaca_file(path: str | Path) -> list[dict]:
    """An Alpaca JSON (list of objects) or JSONL file: each record needs instruction and output."""
    path = Path(path).expanduser()
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"--data-file {path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"--data-file {path}: is a directory; give an Alpaca .json or .jsonl file") from None
    except OSError as exc:
        raise UserError(f"--data-file {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"--data-file {path}: not UTF-8 text; re-save it as UTF-8") from None
    if not text.strip():
        raise UserError(f"--data-file {path}: the file is empty")
    rows: list[tuple[int, object]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for k, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((k, json.loads(line)))
                except ValueError as exc:
                    raise UserError(f"--data-file {path}: line {k} is not valid JSON ({exc.msg})") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UserError(
                f"--data-file {path}: not valid JSON ({exc.msg} at line {exc.lineno}); give an "
                "Alpaca JSON list or a .jsonl file"
            ) from None
        if not isinstance(data, list):
            raise UserError(f"--data-file {path}: expected a JSON list of {{instruction, input, output}} records")
        rows = list(enumerate(data, 1))
    records = []
    for k, r in rows:
        if (
            not isinstance(r, dict)
            or not isinstance(r.get("instruction"), str)
            or not r["instruction"].strip()
            or not isinstance(r.get("output"), str)
            or not r["output"].strip()
        ):
            raise UserError(f"--data-file {path}: record {k} needs non-empty 'instruction' and 'output' strings")
        inp = r.get("input") or ""
        if not isinstance(inp, str):
            raise UserError(f"--data-file {path}: record {k}: 'input' must be a string")
        records.append({"instruction": r["instruction"], "input": inp, "output": r["output"]})
    return records


def resolve_training_data(
    kind: str | None,
    n: int | None,
    *,
    data_file: str | Path | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
) -> TrainingData:
    """The demonstrations to fine-tune on (see module docstring). Bad input is a UserError."""
    if data_file is not None:
        path = Path(data_file).expanduser()
        records = read_alpaca_file(path)
        chosen = records if n is None else _sample(records, n, seed, f"--data-file {path}")
        origin = f"file:{path}" + ("" if n is None or n == len(records) else f" (sample seed={seed})")
        text = canonical_json(chosen)
        return TrainingData(kind or "file", len(chosen), chosen, origin, str(path.resolve()), sha256_text(text))
    if kind is None:
        raise UserError("give --train-data med|gen|both (or --data-file FILE)")
    _check_kind(kind)
    if n is None:
        raise UserError("give --n, the number of demonstrations to train on")
    if n in official_ns(kind):
        records = load_ft_split(kind, n, data_dir=data_dir)
        rel = f"train-splits-used-for-ft/{kind}_safety/ft_safety_{kind}_n{n}.json"
        src = str(resolve_data_dir(data_dir) / rel)
        return TrainingData(kind, n, records, f"official:{rel}", src, sha256_text(canonical_json(records)))
    gen_max = max(official_ns("gen"))
    if kind == "med":
        chosen = _sample(improve_records(data_dir), n, seed, "MedSafety-Improve")
        origin = f"sample:MedSafety-Improve(seed={seed})"
    elif kind == "gen":
        chosen = _sample(load_ft_split("gen", gen_max, data_dir=data_dir), n, seed, "the general safety demonstrations")
        origin = f"sample:ft_safety_gen_n{gen_max}(seed={seed})"
    else:
        half = n // 2
        if n < 2:
            raise UserError("--data both needs --n of at least 2 (half medical, half general)")
        med = _sample(improve_records(data_dir), n - half, seed, "MedSafety-Improve")
        gen = _sample(load_ft_split("gen", gen_max, data_dir=data_dir), half, seed, "the general safety demonstrations")
        chosen = med + gen
        origin = f"sample:MedSafety-Improve+ft_safety_gen_n{gen_max}(seed={seed})"
    return TrainingData(kind, n, chosen, origin, None, sha256_text(canonical_json(chosen)))


_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalise_request(text: str) -> str:
    """Lower case, punctuation and runs of whitespace folded to one space: what overlap compares."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def record_request(record: dict) -> str:
    inp = (record.get("input") or "").strip()
    return record["instruction"] + (f"\n\n{inp}" if inp else "")


def eval_requests(data_dir: str | Path | None = None) -> set[str] | None:
    """Normalised MedSafety-Eval requests, or None when no local copy of the release is available
    (nothing is downloaded just for the check)."""
    try:
        root = resolve_data_dir(data_dir, download=False)
    except UserError:
        return None
    return {normalise_request(it.request) for it in load_official("eval", data_dir=root)}


def check_no_eval_overlap(
    records: list[dict], *, data_dir: str | Path | None = None, what: str = "the training data"
) -> bool:
    """Raise a UserError when any record's request is a MedSafety-Eval request (after normalising).

    Returns True when the check ran, False when no local copy of MedSafety-Eval was available."""
    evals = eval_requests(data_dir)
    if evals is None:
        return False
    hits = [
        k
        for k, r in enumerate(records, 1)
        if normalise_request(r["instruction"]) in evals or normalise_request(record_request(r)) in evals
    ]
    if hits:
        shown = ", ".join(map(str, hits[:5])) + (" ..." if len(hits) > 5 else "")
        raise UserError(
            f"{what}: {len(hits)} of {len(records)} records are MedSafety-Eval requests "
            f"(records {shown}); training on evaluation items is refused: remove them"
        )
    return True
