"""A user's own requests: CSV, JSONL or JSON (Alpaca or any list of objects) files read into `Item`s.

The format is chosen by extension: `.csv`, `.jsonl` / `.ndjson`, `.json` (a list of objects). Field
names are matched case-insensitively:

- request (required), the first present of: request, harmful_medical_request, prompt, instruction,
  question. With `instruction`, a non-empty Alpaca `input` is appended after a blank line.
- principle (optional): an AMA principle number 1-9; blank means unknown, except in a file named like
  the official release's `med_safety_demonstrations_category_N.csv` (what `generate export` writes),
  whose name gives the principle N of rows that have none.
- id (optional): kept as given; a blank id falls back to the row number.
- safe response (optional), the first present of: safe_response, output, response.

Items get split "user", source "user" and ids `user/<file stem>/<id or row number>`. Row numbers are
1-based: the data row for CSV (header excluded), the line for JSONL, the list position for JSON.
Anything unusable (no request column, empty file, not UTF-8, a NUL character, bad principle, blank
request, duplicate id) is a `UserError` naming the file and row.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from ..errors import UserError
from .schema import Item

REQUEST_FIELDS = ("request", "harmful_medical_request", "prompt", "instruction", "question")
SAFE_FIELDS = ("safe_response", "output", "response")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
OFFICIAL_NAME = re.compile(r"med_safety_demonstrations_category_(\d+)")


def principle_from_name(path: Path) -> int | None:
    """N for a file named `med_safety_demonstrations_category_N.<ext>` (the release layout), else None."""
    m = OFFICIAL_NAME.fullmatch(path.stem)
    if m is None:
        return None
    n = int(m.group(1))
    if not 1 <= n <= 9:
        raise UserError(f"{path}: the name says principle {n}, but AMA principles are numbered 1-9; rename the file")
    return n


def read_text_file(path: Path, empty_hint: str) -> str:
    """A user's UTF-8 text file (a BOM is dropped), or a one-line `UserError`: missing, unreadable, not
    UTF-8 (naming the line of the first bad byte), or empty (`empty_hint` says what to add)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}: not UTF-8 text (bad byte at line {line}); re-save the file as UTF-8") from None
    if not text.strip():
        raise UserError(f"{path}: the file is empty; {empty_hint}")
    return text


def load_user_file(path: str | Path) -> list[Item]:
    """Read a user's request file into items, in file order."""
    path = Path(path).expanduser()
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: unsupported file type '{path.suffix}'; use .csv, .jsonl or .json")
    text = read_text_file(path, "add one request per row")
    rows = {"csv": csv_rows, "jsonl": jsonl_rows, "json": _json_rows}[kind](path, text)
    named = principle_from_name(path)
    items: list[Item] = []
    seen: dict[str, int] = {}
    for rownum, record in rows:
        item = _to_item(path, rownum, record)
        if item.principle is None and named is not None:
            item = replace(item, principle=named)
        key = item.id
        if key in seen:
            raise UserError(
                f"{path}: row {rownum}: duplicate id '{key.rsplit('/', 1)[-1]}' "
                f"(first used at row {seen[key]}); ids must be unique"
            )
        seen[key] = rownum
        items.append(item)
    if not items:
        raise UserError(f"{path}: no requests found; add at least one row")
    return items


def csv_rows(path: Path, text: str, required: Sequence[str] | None = REQUEST_FIELDS) -> Iterator[tuple[int, dict]]:
    """(row number, {lower-cased header: value}) per non-blank CSV row; with `required`, the header must
    name one of those columns. Malformed CSV, or a row longer than the header, is a one-line UserError."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:  # pragma: no cover - empty text is caught earlier
        return
    except csv.Error as exc:
        raise UserError(f"{path}: header is not valid CSV ({exc})") from None
    if required and not any(f in header for f in required):
        raise UserError(
            f"{path}: no request column; name one of {', '.join(required)} "
            f"(found: {', '.join(h or '<unnamed>' for h in header)})"
        )
    rownum = 0
    try:
        for row in reader:
            if not row or not any(c.strip() for c in row):
                continue
            rownum += 1
            if len(row) > len(header):
                raise UserError(
                    f"{path}: row {rownum} has {len(row)} fields but the header has "
                    f"{len(header)}; quote fields that contain commas"
                )
            yield rownum, {h: v for h, v in zip(header, row, strict=False) if h}
    except csv.Error as exc:
        raise UserError(f"{path}: row {rownum + 1} is not valid CSV ({exc})") from None


def jsonl_rows(path: Path, text: str, expected: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, {lower-cased key: value}) per non-blank JSON line; a line that is not JSON, or not an
    object (`expected` says what it should hold), is a one-line UserError."""
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{path}: line {lineno} is not valid JSON ({exc.args[0]})") from None
        if expected is not None and not isinstance(record, dict):
            raise UserError(f"{path}: line {lineno} is a {type(record).__name__}, expected an object with {expected}")
        yield lineno, _as_object(path, lineno, record)


def _json_rows(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.args[0]}); for one object per line use .jsonl") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of objects (Alpaca format), got {type(data).__name__}")
    for i, record in enumerate(data, start=1):
        yield i, _as_object(path, i, record)


def _as_object(path: Path, rownum: int, record: object) -> dict:
    if not isinstance(record, dict):
        raise UserError(
            f"{path}: row {rownum} is a {type(record).__name__}, expected an object with a "
            f"request field ({', '.join(REQUEST_FIELDS)})"
        )
    return {str(k).strip().lower(): v for k, v in record.items()}


def _text(path: Path, rownum: int, field: str, value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UserError(f"{path}: row {rownum}: field '{field}' must be text, got {type(value).__name__}")
    if "\0" in value:
        raise UserError(
            f"{path}: row {rownum}: field '{field}' contains a NUL character (\\0 or \\u0000); "
            "remove it (models and servers truncate or reject such text)"
        )
    return value.strip()


def _principle(path: Path, rownum: int, value: object) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 1 <= number <= 9:
        raise UserError(
            f"{path}: row {rownum}: principle {value!r} is not an AMA principle number 1-9; fix it or leave it blank"
        )
    return number


def _to_item(path: Path, rownum: int, record: dict) -> Item:
    field = next((f for f in REQUEST_FIELDS if f in record), None)
    if field is None:
        raise UserError(f"{path}: row {rownum} has no request field; name one of {', '.join(REQUEST_FIELDS)}")
    request = _text(path, rownum, field, record[field])
    if field == "instruction":
        extra = _text(path, rownum, "input", record.get("input"))
        if extra:
            request = f"{request}\n\n{extra}" if request else extra
    if not request:
        raise UserError(f"{path}: row {rownum}: the request ('{field}') is blank; fill it in or delete the row")
    safe_field = next((f for f in SAFE_FIELDS if f in record), None)
    safe = _text(path, rownum, safe_field, record[safe_field]) if safe_field else ""
    raw_id = record.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int, type(None))):
        raise UserError(f"{path}: row {rownum}: id must be text or a whole number")
    ident = _text(path, rownum, "id", raw_id) if isinstance(raw_id, str) else ("" if raw_id is None else str(raw_id))
    return Item(
        id=f"user/{path.stem}/{ident or rownum}",
        split="user",
        source="user",
        principle=_principle(path, rownum, record.get("principle")),
        request=request,
        safe_response=safe or None,
    )
