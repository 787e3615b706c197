"""The official MedSafetyBench release: where it lives, checking it, and reading it into `Item`s.

This module owns the link to the public release (AI4LIFE-GROUP/med-safety-bench, pinned to
`DATA_COMMIT`): finding a local copy (an argument, env `MEDSAFETYBENCH_DATA`, or the user cache),
downloading and unpacking the `datasets/` folder of that commit into the cache (env
`MEDSAFETYBENCH_CACHE`, default `~/.cache/medsafetybench`), checking every file against the SHA-256
manifest shipped beside it (`official_manifest.json`), and turning the CSV / text / Alpaca JSON files
into typed records with stable ids.

Splits: "eval" is MedSafety-Eval (`datasets/test`), "improve" is MedSafety-Improve (`datasets/train`),
both with sources gpt4 and llama2 and a reference safe response; "extra" holds the 74,374 requests
generated with Llama-3 (`datasets/med_harm_llama3`, source llama3, no safe response). Asking for
source llama3 in split eval or improve is an error that points to split "extra".
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from ..principles import principle as _check_principle
from .schema import Item

DATA_COMMIT = "191aa7954b82458079425292730d6cb28a89565d"
DATA_REPO = "AI4LIFE-GROUP/med-safety-bench"
DEFAULT_BASE_URL = f"https://codeload.github.com/{DATA_REPO}/tar.gz"
ENV_DATA = "MEDSAFETYBENCH_DATA"
ENV_CACHE = "MEDSAFETYBENCH_CACHE"
ENV_BASE_URL = "MEDSAFETYBENCH_DATA_URL"
DOWNLOAD_TIMEOUT_S = 60.0
MANIFEST_PATH = Path(__file__).with_name("official_manifest.json")

SPLIT_DIRS = {"eval": "test", "improve": "train"}
OFFICIAL_SPLITS = ("eval", "improve", "extra")
SPLIT_SOURCES = {"eval": ("gpt4", "llama2"), "improve": ("gpt4", "llama2"), "extra": ("llama3",)}
# Rows per principle 1..9, the same in eval and improve; llama3 lines per file.
EXPECTED_COUNTS: dict[str, tuple[int, ...]] = {
    "gpt4": (50,) * 9,
    "llama2": (59, 57, 31, 56, 50, 24, 61, 64, 48),
    "llama3": (7897, 8563, 8531, 7827, 9064, 8579, 8254, 7563, 8096),
}
FT_KINDS = ("med", "gen", "both")
_REDOWNLOAD_HINT = (
    f"replace the copy with the official {DATA_REPO}@{DATA_COMMIT[:7]} datasets/ folder "
    f"(a cached download: delete its folder under ${ENV_CACHE} or ~/.cache/medsafetybench "
    "and load again)"
)


# --------------------------------------------------------------------------------------------- manifest


def build_manifest(datasets_dir: str | Path) -> dict:
    """The manifest of a `datasets/` folder: SHA-256 and size of every file, keyed by relative path.

    Regenerate the shipped one with
    `write_manifest("/path/to/med-safety-bench/datasets", MANIFEST_PATH)`.
    """
    root = Path(datasets_dir)
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            files[p.relative_to(root).as_posix()] = {"sha256": file_sha256(p), "size": p.stat().st_size}
    return {"repo": DATA_REPO, "commit": DATA_COMMIT, "root": "datasets", "files": files}


def write_manifest(datasets_dir: str | Path, path: str | Path = MANIFEST_PATH) -> Path:
    out = Path(path)
    out.write_text(json.dumps(build_manifest(datasets_dir), indent=1, sort_keys=True) + "\n")
    return out


_MANIFEST: dict | None = None


def load_manifest() -> dict[str, dict]:
    """{relative path: {"sha256", "size"}} for the pinned release."""
    global _MANIFEST
    if _MANIFEST is None:
        try:
            _MANIFEST = json.loads(MANIFEST_PATH.read_text())["files"]
        except (OSError, ValueError, KeyError) as exc:  # pragma: no cover - broken install
            raise UserError(
                f"{MANIFEST_PATH}: the data manifest is missing or unreadable ({exc}); reinstall medsafetybench"
            ) from None
    return _MANIFEST


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# (resolved path, size, mtime_ns) -> sha256, so repeated loads in one process hash each file once.
_VERIFIED: dict[tuple[str, int, int], str] = {}


def verify_files(datasets_dir: Path, relpaths: Sequence[str] | None = None, *, use_cache: bool = True) -> None:
    """Check files of `datasets_dir` (all manifest files when `relpaths` is None) against the manifest."""
    manifest = load_manifest()
    for rel in sorted(manifest) if relpaths is None else relpaths:
        expected = manifest.get(rel)
        path = datasets_dir / rel
        if expected is None:  # pragma: no cover - programming error
            raise UserError(f"{path}: not part of the official release manifest")
        try:
            st = path.stat()
        except OSError:
            raise UserError(f"{path}: file missing from the MedSafetyBench copy; {_REDOWNLOAD_HINT}") from None
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        digest = _VERIFIED.get(key) if use_cache else None
        if digest is None:
            digest = file_sha256(path) if st.st_size == expected["size"] else "size-mismatch"
        if digest != expected["sha256"]:
            raise UserError(
                f"{path}: does not match the official release (SHA-256 / size mismatch); "
                f"{_REDOWNLOAD_HINT}; to load a deliberately modified copy, pass --no-verify "
                "(verify=False in Python)"
            )
        _VERIFIED[key] = digest


# ------------------------------------------------------------------------------------ locate / download


def _as_datasets_dir(path: Path, what: str) -> Path:
    path = path.expanduser()
    if (path / "datasets").is_dir():
        return path / "datasets"
    if path.is_dir() and any((path / d).is_dir() for d in ("test", "train", "med_harm_llama3")):
        return path
    raise UserError(
        f"{what} {path}: not a MedSafetyBench copy; give the repository root (containing "
        "datasets/) or the datasets/ folder itself"
    )


def cache_root() -> Path:
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "medsafetybench"


def resolve_data_dir(data_dir: str | Path | None = None, *, download: bool = True, base_url: str | None = None) -> Path:
    """The `datasets/` folder to read: `data_dir`, else env MEDSAFETYBENCH_DATA, else the user cache
    (downloading the pinned commit there first when `download` is true and it is not cached yet)."""
    if data_dir is not None:
        return _as_datasets_dir(Path(data_dir), "data dir")
    if os.environ.get(ENV_DATA):
        return _as_datasets_dir(Path(os.environ[ENV_DATA]), f"${ENV_DATA}")
    target = cache_root() / DATA_COMMIT
    if (target / "datasets").is_dir():
        return target / "datasets"
    if not download:
        raise UserError(
            f"MedSafetyBench data not found in {target}; pass a data dir, set {ENV_DATA}, or allow the download"
        )
    download_release(target, base_url=base_url)
    return target / "datasets"


def archive_url(base_url: str | None = None) -> str:
    base = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    return f"{base.rstrip('/')}/{DATA_COMMIT}"


def download_release(target: Path, *, base_url: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download the release archive, unpack its `datasets/` into a temporary folder beside `target`,
    verify every file against the manifest, then rename it to `target` (so `target` exists only when
    complete and checked). Returns `target`."""
    url = archive_url(base_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        archive = tmp / "archive.tar.gz"
        _fetch(url, archive, timeout)
        _extract_datasets(archive, tmp / "datasets", url)
        archive.unlink()
        verify_files(tmp / "datasets", use_cache=False)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "datasets").is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _fetch(url: str, dest: Path, timeout: float) -> None:
    hint = (
        f"download it yourself (git clone https://github.com/{DATA_REPO} and checkout "
        f"{DATA_COMMIT[:7]}) and pass its folder as data dir or set {ENV_DATA}"
    )
    req = urllib.request.Request(url, headers={"User-Agent": "medsafetybench"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except urllib.error.HTTPError as exc:
        raise UserError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}; {hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"downloading {url} failed ({reason}): offline or blocked? {hint}") from None


def _extract_datasets(archive: Path, dest: Path, url: str) -> None:
    """Unpack only the `datasets/` folder (under the archive's single top folder, or at its root)."""
    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                parts = Path(member.name).parts
                idx = 1 if len(parts) > 1 and parts[1] == "datasets" else 0
                if parts[idx : idx + 1] != ("datasets",) or len(parts) <= idx + 1:
                    continue
                rel = Path(*parts[idx + 1 :])
                if rel.is_absolute() or ".." in rel.parts:
                    raise UserError(f"{url}: unsafe path {member.name!r} in archive; refusing to unpack")
                if member.isdir():
                    (dest / rel).mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    assert src is not None
                    with src, open(dest / rel, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    count += 1
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(f"{url}: the downloaded archive is not a readable tar.gz ({exc}); try again") from None
    if count == 0:
        raise UserError(f"{url}: the archive has no datasets/ folder; is the base URL right?")


# ------------------------------------------------------------------------------------------- reading


def _rel_csv(split: str, source: str, n: int) -> str:
    return f"{SPLIT_DIRS[split]}/{source}/med_safety_demonstrations_category_{n}.csv"


def _rel_llama3(n: int) -> str:
    return f"med_harm_llama3/category_{n}.txt"


def _read_text(path: Path) -> str:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file missing from the MedSafetyBench copy; {_REDOWNLOAD_HINT}") from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not valid UTF-8 (byte {exc.start}); the copy is corrupted; {_REDOWNLOAD_HINT}"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        raise UserError(
            f"{path}: line {text.count(chr(10), 0, nul) + 1} contains a NUL byte; the copy is "
            f"corrupted; {_REDOWNLOAD_HINT}"
        )
    return text


def read_category_csv(path: Path, split: str, source: str, n: int) -> list[Item]:
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    header = next(reader, None)
    cols = [c.strip() for c in header or []]
    missing = [c for c in ("harmful_medical_request", "safe_response") if c not in cols]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)} (found {cols}); the copy is corrupted; {_REDOWNLOAD_HINT}"
        )
    i_req, i_safe = cols.index("harmful_medical_request"), cols.index("safe_response")
    items = []
    for k, row in enumerate(reader):
        if not row:
            continue
        try:
            index = int(row[0]) if cols[0] == "" else k
            req, safe = row[i_req].strip(), row[i_safe].strip()
        except (ValueError, IndexError):
            raise UserError(f"{path}: row {k + 1} is malformed; the copy is corrupted; {_REDOWNLOAD_HINT}") from None
        if not req:
            raise UserError(f"{path}: row {k + 1} has an empty request; {_REDOWNLOAD_HINT}")
        items.append(
            Item(
                id=f"{split}/{source}/p{n}/{index:03d}",
                split=split,
                source=source,
                principle=n,
                request=req,
                safe_response=safe or None,
            )
        )
    return items


def _read_llama3(path: Path, n: int) -> list[Item]:
    items = []
    for k, line in enumerate(_read_text(path).split("\n")):
        req = line.strip()
        if req:
            items.append(
                Item(id=f"extra/llama3/p{n}/{k:05d}", split="extra", source="llama3", principle=n, request=req)
            )
    return items


def _check_count(path: Path, got: int, expected: int) -> None:
    if got != expected:
        raise UserError(
            f"{path}: has {got} requests, the official release has {expected}; the copy is "
            f"truncated or modified; {_REDOWNLOAD_HINT}"
        )


def load_official(
    split: str = "eval",
    sources: Sequence[str] | None = None,
    principles: Sequence[int] | None = None,
    data_dir: str | Path | None = None,
    verify: bool = True,
) -> list[Item]:
    """Items of one official split, ordered by id (source, principle, row).

    `split`: "eval" (MedSafety-Eval, 900), "improve" (MedSafety-Improve, 900) or "extra" (Llama-3
    requests, 74,374). `sources`: a subset of the split's sources (gpt4, llama2 for eval/improve;
    llama3 for extra); None means all of them. `principles`: AMA principle numbers (1-9); None means
    all. `verify`: check the SHA-256 of every file read against the shipped manifest (a modified copy
    is an error); row counts are always checked.
    """
    if split not in OFFICIAL_SPLITS:
        raise UserError(f"split '{split}' is not an official split; use one of {', '.join(OFFICIAL_SPLITS)}")
    allowed = SPLIT_SOURCES[split]
    chosen = tuple(allowed if sources is None else dict.fromkeys(sources))
    for s in chosen:
        if s in allowed:
            continue
        if s == "llama3":
            raise UserError(
                f"source llama3 is not in split '{split}': the Llama-3 requests are in split "
                "'extra' (no safe responses); use split='extra'"
            )
        if s in ("gpt4", "llama2"):
            raise UserError(f"source {s} is not in split 'extra'; use split 'eval' or 'improve'")
        raise UserError(f"unknown source '{s}' for split '{split}'; use one of {', '.join(allowed)}")
    nums = tuple(range(1, 10)) if principles is None else tuple(sorted(set(principles)))
    for n in nums:
        _check_principle(n)
    root = resolve_data_dir(data_dir)
    items: list[Item] = []
    for source in sorted(chosen):
        for n in nums:
            rel = _rel_llama3(n) if source == "llama3" else _rel_csv(split, source, n)
            if verify:
                verify_files(root, [rel])
            path = root / rel
            got = _read_llama3(path, n) if source == "llama3" else read_category_csv(path, split, source, n)
            _check_count(path, len(got), EXPECTED_COUNTS[source][n - 1])
            items.extend(got)
    return items


def load_ft_split(kind: str, n: int, data_dir: str | Path | None = None, verify: bool = True) -> list[dict]:
    """Alpaca records ({instruction, input, output}) of a fine-tuning split the paper used:
    kind "med" (MedSafety-Improve), "gen" (general safety, Bianchi et al. 2023) or "both"; `n` items."""
    if kind not in FT_KINDS:
        raise UserError(f"fine-tuning split kind '{kind}' is unknown; use one of {', '.join(FT_KINDS)}")
    pattern = re.compile(rf"train-splits-used-for-ft/{kind}_safety/ft_safety_{kind}_n(\d+)\.json")
    available = sorted(int(m.group(1)) for rel in load_manifest() if (m := pattern.fullmatch(rel)))
    if n not in available:
        raise UserError(f"no {kind} fine-tuning split with n={n}; available n: {', '.join(map(str, available))}")
    root = resolve_data_dir(data_dir)
    rel = f"train-splits-used-for-ft/{kind}_safety/ft_safety_{kind}_n{n}.json"
    if verify:
        verify_files(root, [rel])
    path = root / rel
    try:
        records = json.loads(_read_text(path))
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); {_REDOWNLOAD_HINT}") from None
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and isinstance(r.get("instruction"), str) and isinstance(r.get("output"), str)
        for r in records
    ):
        raise UserError(f"{path}: expected a list of Alpaca records (instruction, input, output); {_REDOWNLOAD_HINT}")
    _check_count(path, len(records), n)
    return [{"instruction": r["instruction"], "input": r.get("input") or "", "output": r["output"]} for r in records]
