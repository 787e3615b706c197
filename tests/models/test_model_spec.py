"""Model specs: parsing through the backend registry, the safe display form, validation without
loading, `load_model` option filtering, plug-in backends, and one-way module dependencies."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.paths import REPO
from medsafetybench.errors import MissingExtra, UserError
from medsafetybench.models import (
    BACKENDS,
    ChatRequest,
    Completion,
    ModelSpec,
    load_model,
    model_identity,
    parse_spec,
    redact_spec,
    register_backend,
    validate_spec,
)
from medsafetybench.models.registry import unregister_backend

MODELS = REPO / "src" / "medsafetybench" / "models"
SECRET = "s3cr3t-pw-0123"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("openai:gpt-4o-mini", ModelSpec("openai", "gpt-4o-mini")),
        ("OpenAI:m@http://localhost:8000/v1", ModelSpec("openai", "m", base_url="http://localhost:8000/v1")),
        ("hf:/p", ModelSpec("hf", "/p")),
        ("hf:/p+/adapter", ModelSpec("hf", "/p", adapter="/adapter")),
        ("vllm:org/name", ModelSpec("vllm", "org/name")),
        ("vllm:/p+/a", ModelSpec("vllm", "/p", adapter="/a")),  # served through vLLM's LoRA support
    ],
)
def test_parse(text, expected):
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpt-4o", "has no backend"),
        ("foo:bar", "unknown backend 'foo'; use one of anthropic:, hf:, openai:, vllm:"),
        ("hf:", "names no model"),
        ("openai:@http://h/v1", "names no model before '@'"),
        ("openai:m@localhost:1", "must start with http"),
        ("vllm:+/a", "names no model before"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(UserError, match=message):
        parse_spec(text)


def test_display_drops_userinfo_and_secret_query_but_client_url_keeps_them():
    text = f"openai:m@http://user:{SECRET}@127.0.0.1:9/v1/?api_key={SECRET}&deployment=x"
    spec = parse_spec(text)
    assert spec.base_url == f"http://user:{SECRET}@127.0.0.1:9/v1/?api_key={SECRET}&deployment=x"
    assert str(spec) == spec.display == "openai:m@http://127.0.0.1:9/v1?deployment=x"
    assert SECRET not in repr(spec) and SECRET not in f"{spec}" and SECRET not in redact_spec(text)
    # an unparsable spec is still redacted in messages
    with pytest.raises(UserError) as err:
        parse_spec(f"nope:m@http://u:{SECRET}@h/v1?token={SECRET}")
    assert SECRET not in str(err.value)
    assert SECRET not in redact_spec(f"nope:m@http://u:{SECRET}@h/v1?token={SECRET}")


def test_validate_checks_paths_without_loading(tmp_path):
    (tmp_path / "model").mkdir()
    assert validate_spec(f"hf:{tmp_path / 'model'}") == ModelSpec("hf", str(tmp_path / "model"))
    assert validate_spec("hf:org/some-model").name == "org/some-model"  # hub ids pass
    with pytest.raises(UserError, match="does not exist"):
        validate_spec("hf:/nonexistent/model")
    with pytest.raises(UserError, match="adapter path '/nonexistent/adapter' does not exist"):
        validate_spec(f"hf:{tmp_path / 'model'}+/nonexistent/adapter")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="is a file"):
        validate_spec(f"hf:{tmp_path / 'file.bin'}")
    with pytest.raises(UserError, match="does not exist"):
        validate_spec("vllm:/nonexistent")


def test_validate_vllm_names_the_missing_extra(tmp_path):
    pytest.importorskip("torch")  # any machine: vllm is not installed in the test environment
    try:
        import vllm  # noqa: F401

        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    with pytest.raises(MissingExtra, match=r"medsafetybench\[vllm\]"):
        validate_spec(f"vllm:{tmp_path}")


def test_validate_openai_needs_a_key_only_for_api_openai_com(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(UserError, match="OPENAI_API_KEY is not set"):
        validate_spec("openai:gpt-4o")
    assert validate_spec("openai:m@http://127.0.0.1:9/v1").backend == "openai"
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    validate_spec("openai:gpt-4o")


class EchoModel:
    """A plug-in backend: replies with the last message, reversed."""

    OPTIONS = frozenset({"suffix"})

    def __init__(self, name: str, suffix: str = "") -> None:
        self.identity = f"echo:{name}{suffix}"

    @classmethod
    def from_spec(cls, spec: ModelSpec, **options):
        return cls(spec.name, **options)

    async def generate(self, requests, on_result=None):
        out = [Completion(r.messages[-1].content[::-1]) for r in requests]
        for i, c in enumerate(out):
            if on_result:
                on_result(i, c)
        return out

    async def aclose(self) -> None:
        pass


def test_a_plugin_backend_is_one_decorator_and_gets_only_its_options():
    register_backend("echo")(EchoModel)
    try:
        assert "echo" in BACKENDS
        spec = parse_spec("echo:abc")
        assert spec == ModelSpec("echo", "abc")
        model = load_model("echo:abc", suffix="!", concurrency=3, batch_size=None)  # others ignored
        assert model.identity == "echo:abc!"
        assert asyncio.run(model.generate([ChatRequest.simple("hello")]))[0].text == "olleh"
    finally:
        unregister_backend("echo")
        BACKENDS.pop("echo", None)
    with pytest.raises(UserError, match="unknown backend 'echo'"):
        parse_spec("echo:abc")


def test_a_plugin_backend_from_an_entry_point(tmp_path, monkeypatch):
    (tmp_path / "rev_backend_mod.py").write_text(
        "class Rev:\n    OPTIONS = frozenset()\n    identity = 'rev'\n"
        "    @classmethod\n    def from_spec(cls, spec, **o):\n        return cls()\n"
    )
    dist = tmp_path / "revplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: revplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[medsafetybench.backends]\nrev = rev_backend_mod:Rev\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_model("rev:anything").identity == "rev"
    sys.modules.pop("rev_backend_mod", None)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_dependencies_point_one_way():
    """spec.py and registry.py never import a backend (not even inside functions); backends import them."""
    backends = {".openai_backend", ".hf_backend", ".vllm_backend"}
    for module in ("spec.py", "registry.py", "base.py", "capabilities.py", "redact.py"):
        assert not (_imports(MODELS / module) & backends), module
    for backend in backends:
        assert {".spec", ".registry"} <= _imports(MODELS / (backend[1:] + ".py")), backend


def test_parsing_an_hf_spec_imports_no_heavy_module():
    code = (
        "import sys; from medsafetybench.models import parse_spec, validate_spec; parse_spec('hf:org/x+/a'); "
        "validate_spec('hf:org/x'); print(sorted(m for m in ('torch', 'transformers', 'vllm', 'openai') "
        "if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_model_identity_without_building_the_model(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    for text in ("openai:gpt-4o", f"openai:m@http://u:{SECRET}@127.0.0.1:9/v1/?key={SECRET}"):
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        assert model_identity(text, concurrency=3) == load_model(text, concurrency=3).identity
        monkeypatch.delenv("OPENAI_API_KEY")
        assert SECRET not in model_identity(text)  # and no key needed to name it
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:7/v1/")
    assert model_identity("openai:m") == "openai:m@http://127.0.0.1:7/v1"
    register_backend("echo")(EchoModel)
    try:
        with pytest.raises(UserError, match="cannot name a model's identity without loading"):
            model_identity("echo:x")
    finally:
        unregister_backend("echo")
        BACKENDS.pop("echo", None)
