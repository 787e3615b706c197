"""The package's shape: no import circle inside `medsafetybench`, counting every import (those inside
functions too), package `__init__` re-exports, and the parent packages an import runs; the wheel ships
no lab code; the CLI starts without the heavy extras."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers.paths import REPO

SRC = REPO / "src"
PACKAGE = "medsafetybench"


def modules(src: Path = SRC) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package `__init__`)."""
    out = {}
    for path in (src / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _owner(name: str, mods: dict) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its body (plus their parent packages that
    are not its own: importing `a.b.c` from outside `a.b` runs `a/__init__` and `a/b/__init__`)."""
    mods = modules(src)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, (path, is_pkg) in mods.items():
        base = mod if is_pkg else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = base.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    origin = ".".join(parts + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in mods else origin for a in node.names]
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets)
                and isinstance(node.value, ast.Dict)
            ):
                # a lazy-export table (`_lazy.lazy_exports`): name -> submodule, imported on first use
                for value in node.value.values:
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        rel = value.value
                        dots = len(rel) - len(rel.lstrip("."))
                        parts = base.split(".")[: len(base.split(".")) - max(dots - 1, 0)] if dots else []
                        targets.append(".".join([*parts, rel.lstrip(".")]) if dots else rel)
            for t in targets:
                owner = _owner(t, mods) if t.startswith(PACKAGE) else None
                if owner is None or owner == mod:
                    continue
                graph[mod].add(owner)
                parts = owner.split(".")
                for i in range(1, len(parts)):
                    parent = ".".join(parts[:i])
                    if parent in mods and not mod.startswith(parent + "."):
                        graph[mod].add(parent)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_inside_the_package() -> None:
    found = circles(import_graph())
    assert not found, "import circles (move the shared piece down a floor): " + "; ".join(
        " <-> ".join(c) for c in found
    )


def test_the_checker_sees_lazy_imports_and_package_inits(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")  # lazy, and via sub/__init__
    (pkg / "sub" / "__init__.py").write_text("from .b import g\n")
    (pkg / "sub" / "b.py").write_text("from ..a import f\n")
    (pkg / "c.py").write_text("from . import a\n")
    (pkg / "lazy").mkdir()
    (pkg / "lazy" / "__init__.py").write_text('_EXPORTS = {"h": ".impl"}\n')  # a lazy-export table counts
    (pkg / "lazy" / "impl.py").write_text("from ..c import a\n")
    (pkg / "d.py").write_text("from .lazy import h\n")
    (pkg / "e.py").write_text("from .d import x\n")
    (pkg / "c.py").write_text("from . import a\nfrom .e import y\n")
    found = circles(import_graph(tmp_path))
    assert [f"{PACKAGE}.a", f"{PACKAGE}.sub", f"{PACKAGE}.sub.b"] in found
    assert [f"{PACKAGE}.c", f"{PACKAGE}.d", f"{PACKAGE}.e", f"{PACKAGE}.lazy", f"{PACKAGE}.lazy.impl"] in found


def test_no_package_module_imports_the_lab() -> None:
    """Training code lives in the repository's `lab/`; nothing shipped imports it."""
    for path in (SRC / PACKAGE).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            assert not [n for n in names if n == "lab" or n.startswith("lab.")], path


def test_the_wheel_ships_no_lab_code(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys
    import zipfile

    root = SRC.parent
    tree = tmp_path / "tree"  # a copy: building writes build/ and *.egg-info, never into the checkout
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, tree / name)
    shutil.copytree(root / "src", tree / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    shutil.copytree(root / "lab", tree / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(tree),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("medsafetybench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("lab/") or "/lab/" in n]
    assert not [n for n in names if "offline_train" in n or "trainsets" in n]
    assert "medsafetybench/judging/offline/offline_judge_v3.safetensors" in names  # weights still ship
    assert "medsafetybench/cost/prices.toml" in names


def test_the_stated_python_floor_is_the_one_the_code_needs() -> None:
    """The package reads TOML with the standard library's `tomllib` (3.11+) at start-up, so it states
    3.11; CI runs on that floor's interpreter line."""
    import sys
    import tomllib

    meta = tomllib.loads((SRC.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["requires-python"] == ">=3.11"
    assert meta["tool"]["ruff"]["target-version"] == "py311"
    assert sys.version_info >= (3, 11)
    uses_tomllib = [p for p in (SRC / PACKAGE).rglob("*.py") if "import tomllib" in p.read_text(encoding="utf-8")]
    assert uses_tomllib, "no tomllib left: the floor could go back to 3.10"


def test_one_version() -> None:
    import tomllib

    from medsafetybench import __version__

    assert tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]["version"] == __version__


def test_every_import_inside_the_package_names_a_module_that_exists() -> None:
    """Relative and absolute imports of package modules, those inside functions too, resolve to a file: a
    module moved to another room leaves no import behind that would fail only when its function runs."""
    mods = modules()
    broken = []
    for mod, (path, is_pkg) in mods.items():
        base = mod if is_pkg else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                parts = base.split(".")
                origin = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            elif (node.module or "").startswith(PACKAGE):
                origin = node.module
            else:
                continue
            if origin not in mods:
                broken.append(f"{path.relative_to(SRC)}:{node.lineno} {origin}")
    assert not broken, broken
