"""Export of accepted candidates: the official release layout and Alpaca JSON.

- `write_official_layout(dir)`: one `med_safety_demonstrations_category_N.csv` per principle with the
  release's columns (`,harmful_medical_request,safe_response`: an unnamed 0-based index first), so a
  folder of them reads like a `gpt4/` or `llama2/` folder of the release (`read_official_layout`).
- `write_alpaca(path)`: `[{instruction, input, output, principle, id}]`, the fine-tuning format the
  paper used (instruction = request, output = safe response), readable by `data.load_user_file`.

Only accepted candidates are written, with the reviewer's edits applied; an accepted candidate
without a safe response is an error (write them first with `generate safe-responses` or edit one in).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from ..data.official import read_category_csv
from ..data.schema import Item
from ..errors import UserError
from .candidates import Candidate, CandidateStore

CSV_NAME = "med_safety_demonstrations_category_{n}.csv"
CSV_HEADER = ("", "harmful_medical_request", "safe_response")


def accepted(cands: CandidateStore, principles: Sequence[int] | None = None) -> list[Candidate]:
    out = cands.list(status=("accepted",), principles=principles)
    missing = [c.id for c in out if not c.final_safe_response]
    if missing:
        raise UserError(
            f"{len(missing)} accepted candidate(s) have no safe response (first: {missing[0]}); "
            "run `medsafety generate safe-responses` or edit one in during review"
        )
    return out


def write_official_layout(cands: Sequence[Candidate], out_dir: str | Path) -> list[Path]:
    """Per-principle CSVs in `out_dir` (created); returns the files written (principles with items)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n in range(1, 10):
        rows = [c for c in cands if c.principle == n]
        if not rows:
            continue
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_HEADER)
        for i, c in enumerate(rows):
            w.writerow([i, c.final_request, c.final_safe_response])
        path = out / CSV_NAME.format(n=n)
        path.write_text(buf.getvalue(), encoding="utf-8")
        written.append(path)
    return written


def write_alpaca(cands: Sequence[Candidate], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [
        {
            "instruction": c.final_request,
            "input": "",
            "output": c.final_safe_response,
            "principle": c.principle,
            "id": c.id,
        }
        for c in cands
    ]
    path.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_official_layout(folder: str | Path, source: str = "user", split: str = "user") -> list[Item]:
    """Items from a folder of per-principle CSVs in the release layout (ours or a release folder), read
    by the official loader's CSV reader; ids are `{split}/{source}/pN/{index}`."""
    folder = Path(folder)
    items: list[Item] = []
    files = sorted(folder.glob("med_safety_demonstrations_category_*.csv"))
    if not files:
        raise UserError(f"{folder}: no med_safety_demonstrations_category_N.csv files")
    for path in files:
        try:
            n = int(path.stem.rsplit("_", 1)[1])
        except ValueError:
            raise UserError(f"{path}: the file name must end in _N.csv with N a principle 1-9") from None
        if not 1 <= n <= 9:
            raise UserError(f"{path}: principle {n} is not 1-9")
        items.extend(read_category_csv(path, split, source, n))  # the release reader: same CSV logic
    return items
