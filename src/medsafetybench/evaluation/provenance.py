"""Where a result came from: package and library versions, the data (release commit and the SHA-256 of
every file read, or a user file's digest), the judges' prompt versions and the settings. Recorded with
each run when it is created and carried by `--json` output and exports, so a script can tell whether
two results are comparable without asking the store."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata, resources
from pathlib import Path

from .._version import __version__
from ..data.official import DATA_COMMIT, file_sha256, load_manifest
from ..judging.prompt import PROMPT_VERSION

LIBRARIES = (
    "numpy",
    "scipy",
    "matplotlib",
    "openai",
    "torch",
    "transformers",
    "peft",
    "vllm",
    "ray",
    "sentence-transformers",
)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape results (absent ones are left out)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def data_provenance(
    split: str, sources: list[str] | None = None, principles: list[int] | None = None, input_file: str | None = None
) -> dict:
    """The data an item selection reads: the official release's commit and the manifest digests of its
    files, the bundled sample's digest, or a user file's path and digest."""
    if input_file:
        path = Path(input_file)
        return {"kind": "user-file", "path": str(path), "sha256": file_sha256(path) if path.is_file() else None}
    if split == "sample":
        blob = resources.files("medsafetybench.data").joinpath("sample.jsonl").read_bytes()
        return {"kind": "bundled-sample", "sha256": hashlib.sha256(blob).hexdigest()}
    folder = {"eval": "test/", "improve": "train/", "extra": "med_harm_llama3/"}.get(split, f"{split}/")
    files = {}
    for rel, entry in sorted(load_manifest().items()):
        if not rel.startswith(folder):
            continue
        if sources and split != "extra" and rel.split("/")[1] not in sources:
            continue
        if principles and not any(rel.endswith(f"_{p}.csv") or rel.endswith(f"category_{p}.txt") for p in principles):
            continue
        files[rel] = entry["sha256"]
    return {"kind": "official", "commit": DATA_COMMIT, "files": files}


def run_provenance(data: dict, judges: list[str] | None = None) -> dict:
    """What is recorded with a run at creation."""
    return {
        "medsafetybench": __version__,
        "python": platform.python_version(),
        "libraries": library_versions(),
        "data": data,
        "judge_prompt_version": PROMPT_VERSION,
        "judges": judges or [],
    }
