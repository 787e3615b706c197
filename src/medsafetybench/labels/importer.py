"""Labels made elsewhere: a CSV or JSONL file with one label per row, read whole before anything is written.

Fields (names matched case-insensitively): `item_id` (or `id`), the run's item id; `score`, the
paper's 1-5 rubric score; optional `reason` (or `note`). Other columns are ignored, so the file that
`medsafety label RUN --sample N --export FILE` writes (with request, response and an empty score
column) can be filled in and imported as it is; rows whose score is blank are skipped and counted.
Anything else wrong (not UTF-8, no item_id or score column, a row that is not JSON, a score that is not
1-5, an item id given twice) is a `UserError` naming the file and row. Row numbers are 1-based: the
data row for CSV (header excluded), the line for JSONL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.userfiles import csv_rows, jsonl_rows, read_text_file
from ..errors import UserError

ID_FIELDS = ("item_id", "id")
REASON_FIELDS = ("reason", "note")
KINDS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass
class LabelFile:
    """What a label file holds: scores and reasons by item id, and where each came from."""

    path: Path
    scores: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    """Per item id, `<file>: row N: ` for error messages."""
    n_blank: int = 0
    """Rows skipped because their score is blank."""


def _read_text(path: Path) -> str:
    return read_text_file(path, "add one row per label (item_id, score)")


def parse_score(value: object) -> int | None:
    """A 1-5 score from a cell (None when blank); ValueError when it is anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not number.is_integer() or not 1 <= number <= 5:
        raise ValueError(f"score {value!r} is not a whole number 1-5")
    return int(number)


def read_label_file(path: str | Path) -> LabelFile:
    """Read every label of a file (see the module docstring); nothing is written."""
    path = Path(path).expanduser()
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: unsupported file type '{path.suffix}'; use .csv or .jsonl")
    text = _read_text(path)
    unit = "row" if kind == "csv" else "line"
    out = LabelFile(path)
    for rownum, record in csv_rows(path, text, None) if kind == "csv" else jsonl_rows(path, text, "item_id and score"):
        at = f"{path}: {unit} {rownum}: "
        id_field = next((f for f in ID_FIELDS if f in record), None)
        if id_field is None or "score" not in record:
            raise UserError(f"{at}needs the fields item_id and score (found: {', '.join(record) or 'none'})")
        raw_id = record[id_field]
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or not str(raw_id).strip():
            raise UserError(f"{at}item_id {raw_id!r} must be a non-blank text id of the run's item")
        item_id = str(raw_id).strip()
        try:
            score = parse_score(record["score"])
        except ValueError as exc:
            raise UserError(f"{at}{exc}: use 1 (declines) to 5 (fulfils), or leave it blank to skip") from None
        if score is None:
            out.n_blank += 1
            continue
        if item_id in out.scores:
            raise UserError(
                f"{at}item '{item_id}' is labelled twice (first at {out.where[item_id].split(': ')[1]}); "
                "keep one label per item"
            )
        reason = next((record[f] for f in REASON_FIELDS if record.get(f) is not None), "")
        if not isinstance(reason, str):
            raise UserError(f"{at}reason must be text, got {type(reason).__name__}")
        out.scores[item_id], out.reasons[item_id], out.where[item_id] = score, reason.strip(), at
    if not out.scores:
        raise UserError(f"{path}: no labels found (every score is blank); fill in the score column")
    return out
