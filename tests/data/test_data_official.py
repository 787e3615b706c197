"""The official release loader: exact counts, stable ids, corrupted copies, and the cached download
(served by a real HTTP server on 127.0.0.1 from an archive built from the shared copy)."""

from __future__ import annotations

import io
import shutil
import socket
import tarfile
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers.paths import SHARED
from medsafetybench.data import official
from medsafetybench.data.official import (
    DATA_COMMIT,
    build_manifest,
    load_ft_split,
    load_manifest,
    load_official,
    resolve_data_dir,
)
from medsafetybench.errors import UserError

SHARED = SHARED / "data" / "med-safety-bench"
pytestmark = pytest.mark.skipif(
    not (SHARED / "datasets").is_dir(), reason=f"official MedSafetyBench copy not found at {SHARED}"
)
LLAMA2 = (59, 57, 31, 56, 50, 24, 61, 64, 48)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv(official.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(official.ENV_DATA, raising=False)
    monkeypatch.delenv(official.ENV_BASE_URL, raising=False)
    official._VERIFIED.clear()


# ---------------------------------------------------------------------------------------- real data


@pytest.mark.parametrize("split", ["eval", "improve"])
def test_eval_and_improve_counts(split):
    items = load_official(split, data_dir=SHARED)
    assert len(items) == 900
    by = Counter((it.source, it.principle) for it in items)
    assert [by["gpt4", n] for n in range(1, 10)] == [50] * 9
    assert [by["llama2", n] for n in range(1, 10)] == list(LLAMA2)
    assert len({it.id for it in items}) == 900
    assert all(it.split == split and it.safe_response and it.request and it.policy == "medical" for it in items)
    assert [it.id for it in items] == sorted(it.id for it in items)


def test_ids_are_stable_and_match_rows():
    items = {it.id: it for it in load_official("eval", data_dir=SHARED)}
    first = items["eval/gpt4/p1/000"]
    assert first.request.startswith("Write a justification for the off-label use of a cancer drug")
    assert first.safe_response.startswith("I'm sorry")
    assert "eval/llama2/p3/030" in items and "eval/llama2/p3/031" not in items


def test_repo_root_and_datasets_folder_are_equivalent():
    assert load_official("improve", data_dir=SHARED) == load_official("improve", data_dir=SHARED / "datasets")


def test_extra_llama3_counts():
    items = load_official("extra", data_dir=SHARED)
    assert len(items) == 74_374
    by = Counter(it.principle for it in items)
    assert tuple(by[n] for n in range(1, 10)) == official.EXPECTED_COUNTS["llama3"]
    assert all(it.source == "llama3" and it.split == "extra" and it.safe_response is None for it in items)
    assert items[0].id == "extra/llama3/p1/00000" and items[-1].id == "extra/llama3/p9/08095"


def test_filters_by_source_and_principle():
    items = load_official("eval", sources=["llama2"], principles=[3, 6], data_dir=SHARED)
    assert len(items) == 31 + 24
    assert {(it.source, it.principle) for it in items} == {("llama2", 3), ("llama2", 6)}


def test_bad_split_source_principle():
    with pytest.raises(UserError, match="split 'extra'"):
        load_official("eval", sources=["llama3"], data_dir=SHARED)
    with pytest.raises(UserError, match="not in split 'extra'"):
        load_official("extra", sources=["gpt4"], data_dir=SHARED)
    with pytest.raises(UserError, match="unknown source 'gpt5'"):
        load_official("eval", sources=["gpt5"], data_dir=SHARED)
    with pytest.raises(UserError, match="not an official split"):
        load_official("test", data_dir=SHARED)
    with pytest.raises(UserError, match="principle 10"):
        load_official("eval", principles=[10], data_dir=SHARED)


def test_env_data_dir_and_bad_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv(official.ENV_DATA, str(SHARED))
    assert resolve_data_dir() == SHARED / "datasets"
    assert len(load_official("eval", principles=[1])) == 50 + 59
    with pytest.raises(UserError, match="not a MedSafetyBench copy"):
        resolve_data_dir(tmp_path)
    monkeypatch.delenv(official.ENV_DATA)
    with pytest.raises(UserError, match="allow the download"):
        resolve_data_dir(download=False)


def test_manifest_matches_shared_copy():
    assert build_manifest(SHARED / "datasets")["files"] == load_manifest()
    assert len(load_manifest()) == 81


def test_ft_splits():
    med = load_ft_split("med", 100, data_dir=SHARED)
    assert len(med) == 100 and set(med[0]) == {"instruction", "input", "output"}
    assert len(load_ft_split("both", 1800, data_dir=SHARED)) == 1800
    with pytest.raises(UserError, match="available n: 100, 200.*900$"):
        load_ft_split("gen", 1000, data_dir=SHARED)
    with pytest.raises(UserError, match="kind 'bio'"):
        load_ft_split("bio", 100, data_dir=SHARED)


# ---------------------------------------------------------------------------------- corrupted copies


@pytest.fixture()
def copy(tmp_path) -> Path:
    """A writable copy of the eval split (datasets/test only)."""
    root = tmp_path / "copy"
    shutil.copytree(SHARED / "datasets" / "test", root / "datasets" / "test")
    return root


def _csv(root: Path, source: str = "gpt4", n: int = 2) -> Path:
    return root / "datasets" / "test" / source / f"med_safety_demonstrations_category_{n}.csv"


def test_copy_loads(copy):
    assert len(load_official("eval", data_dir=copy)) == 900


def test_truncated_csv(copy):
    path = _csv(copy)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), encoding="utf-8")
    with pytest.raises(UserError, match=r"category_2\.csv.*SHA-256"):
        load_official("eval", data_dir=copy)
    with pytest.raises(UserError, match=r"category_2\.csv: has 49 requests.*has 50.*truncated"):
        load_official("eval", data_dir=copy, verify=False)


def test_deleted_file(copy):
    _csv(copy, "llama2", 7).unlink()
    for verify in (True, False):
        with pytest.raises(UserError, match=r"llama2/med_safety_demonstrations_category_7\.csv: file missing"):
            load_official("eval", data_dir=copy, verify=verify)


def test_changed_bytes_same_size(copy):
    path = _csv(copy)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"unethical", b"UNETHICAL", 1))
    with pytest.raises(UserError, match=r"category_2\.csv: does not match the official release"):
        load_official("eval", data_dir=copy)
    items = load_official("eval", principles=[2], sources=["gpt4"], data_dir=copy, verify=False)
    assert any("UNETHICAL" in (it.safe_response or "") for it in items)


def test_mismatch_hint_names_the_cli_flag_and_the_flag_works(copy, tmp_path, capsys):
    from helpers.cli import run_main

    path = _csv(copy)
    path.write_bytes(path.read_bytes().replace(b"unethical", b"UNETHICAL", 1))
    with pytest.raises(UserError, match=r"pass --no-verify \(verify=False in Python\)"):
        load_official("eval", data_dir=copy)
    args = [
        "eval",
        "--model",
        "openai:m@http://127.0.0.1:9/v1",
        "--data",
        str(copy),
        "--project",
        str(tmp_path / "p"),
        "--source",
        "gpt4",
        "--principle",
        "2",
        "--limit",
        "1",
        "--max-new-tokens",
        "1",
    ]
    assert run_main(*args) == 2 and "--no-verify" in capsys.readouterr().err
    # with the flag the modified copy loads; the run then stops at the (unreachable) model
    assert run_main(*args, "--no-verify") == 2
    err = capsys.readouterr().err
    assert "cannot connect to http://127.0.0.1:9/v1" in err and "SHA-256" not in err


def test_nul_bytes_are_named_with_file_and_line(copy):
    path = _csv(copy)
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b" ", b"\x00", 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(UserError, match=r"category_2\.csv: line 4 contains a NUL byte"):
        load_official("eval", data_dir=copy, verify=False)


def test_verification_is_redone_after_a_change(copy):
    load_official("eval", data_dir=copy)
    path = _csv(copy)
    path.write_bytes(path.read_bytes().replace(b"I'm sorry", b"I am sorry", 1))
    with pytest.raises(UserError, match="does not match"):
        load_official("eval", data_dir=copy)


def test_missing_column_and_bad_bytes(copy):
    path = _csv(copy)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("safe_response", "answer", 1), encoding="utf-8")
    with pytest.raises(UserError, match=r"category_2\.csv: missing column\(s\) safe_response"):
        load_official("eval", data_dir=copy, verify=False)
    path.write_bytes(b"\xff\xfe" + text.encode())
    with pytest.raises(UserError, match=r"category_2\.csv: not valid UTF-8"):
        load_official("eval", data_dir=copy, verify=False)


# ------------------------------------------------------------------------------------------ download


def _archive(tmp: Path, *, tamper: bool = False) -> bytes:
    """A codeload-style tar.gz: one top folder holding the repository, datasets/ among other files."""
    top = f"med-safety-bench-{DATA_COMMIT}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        tar.add(SHARED / "LICENSE", arcname=f"{top}/LICENSE")
        readme = b"not part of datasets/"
        info = tarfile.TarInfo(f"{top}/exps/README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
        for p in sorted((SHARED / "datasets").rglob("*")):
            arc = f"{top}/datasets/{p.relative_to(SHARED / 'datasets').as_posix()}"
            if tamper and p.name == "category_9.txt":
                data = p.read_bytes()[:-10]
                info = tarfile.TarInfo(arc)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.add(p, arcname=arc, recursive=False)
    return buf.getvalue()


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("archives")
    return {"good": _archive(tmp), "tampered": _archive(tmp, tamper=True)}


@pytest.fixture()
def server():
    """A real HTTP server on 127.0.0.1 serving `routes` (path -> bytes); anything else is a 404."""
    routes: dict[str, bytes] = {}
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            hits.append(self.path)
            body = routes.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/tar.gz", routes, hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_success_then_cached(server, archives, tmp_path, monkeypatch):
    base, routes, hits = server
    routes[f"/tar.gz/{DATA_COMMIT}"] = archives["good"]
    monkeypatch.setenv(official.ENV_BASE_URL, base)
    items = load_official("eval")
    assert len(items) == 900 and len(hits) == 1
    cached = tmp_path / "cache" / DATA_COMMIT / "datasets"
    assert resolve_data_dir() == cached
    assert not (cached / "LICENSE").exists() and not (cached.parent / "exps").exists()
    assert len(load_official("extra", principles=[9])) == 8096
    assert load_ft_split("med", 900)[0]["instruction"]
    assert len(hits) == 1  # served from the cache afterwards
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [DATA_COMMIT]


def test_download_checksum_failure_leaves_nothing(server, archives, tmp_path):
    base, routes, _ = server
    routes[f"/tar.gz/{DATA_COMMIT}"] = archives["tampered"]
    with pytest.raises(UserError, match=r"med_harm_llama3/category_9\.txt: does not match"):
        resolve_data_dir(base_url=base)
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_404(server, tmp_path):
    base, _, hits = server
    with pytest.raises(UserError, match="HTTP 404"):
        resolve_data_dir(base_url=base)
    assert hits == [f"/tar.gz/{DATA_COMMIT}"]
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_not_a_tarball(server, tmp_path):
    base, routes, _ = server
    routes[f"/tar.gz/{DATA_COMMIT}"] = b"<html>not an archive</html>"
    with pytest.raises(UserError, match="not a readable tar.gz"):
        resolve_data_dir(base_url=base)
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_offline(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match="offline or blocked"):
        resolve_data_dir(base_url=f"http://127.0.0.1:{port}/tar.gz")
    assert list((tmp_path / "cache").iterdir()) == []


def test_load_items_over_official():
    from medsafetybench.data import load_items

    items = load_items("eval", data_dir=SHARED, principles=[5], limit=60)
    assert len(items) == 60
    assert items[0].id == "eval/gpt4/p5/000" and items[-1].id == "eval/llama2/p5/009"
    assert load_items("improve", sources=["gpt4"], data_dir=SHARED, limit=2)[1].id == "improve/gpt4/p1/001"
