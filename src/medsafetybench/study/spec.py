"""Study files: many models, one item set, one or more judges, as a TOML file parsed into a typed `Study`.

    [study]
    name = "paper"                      # required; runs are tagged study:<name>
    description = "..."
    engine = "local"                    # or "ray" / "ray:ADDRESS"
    batch = true                        # API models and LLM judges through the providers' batch APIs
    batch_timeout = 86400               # seconds; then open batches are cancelled, the rest asked live
    batch_poll = 30                     # seconds between polls

    [items]                             # which items (see tasks.ItemSelection)
    split = "eval"                      # eval | improve | extra | sample
    sources = ["gpt4", "llama2"]
    principles = [1, 2, 3]
    sample = 100                        # seeded, stratified by principle and source
    seed = 0
    limit = 50
    input = "my_requests.csv"           # instead of the benchmark (relative to the study file)
    data = "/path/to/med-safety-bench"  # local copy of the release (else $MEDSAFETYBENCH_DATA / download)

    [settings]                          # for every model unless a model overrides them
    max_new_tokens = 512
    system_prompt = "default"           # the format's: paper-* formats the family's text the paper used,
                                        # others Llama-2's default; or "llama2-default", "none", the text

    [[judges]]                          # one or more; the first is the primary judge
    name = "gpt35"
    spec = "openai:gpt-3.5-turbo-0125"
    concurrency = 32                    # optional: concurrency, timeout, batch_size, max_attempts

    [[models]]                          # one or more
    name = "llama2-7b-chat"             # short, unique: names the run everywhere
    spec = "hf:meta-llama/Llama-2-7b-chat-hf"   # {cache} = the medsafetybench cache folder, ~ = home
    prompt_format = "paper"
    group = "general"                   # medical | general | anything: groups the report
    batch_size = 16                     # optional: batch_size, concurrency, timeout, tensor_parallel_size,
                                        # replicas, max_new_tokens, system_prompt

Every mistake (a TOML syntax error, an unknown key, a missing or mistyped value, a duplicate name, a
bad model or judge spec) is one `UserError` naming the file and line, raised before anything runs.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..evaluation.pipeline import EvalSettings
from ..evaluation.tasks import ItemSelection, settings_from
from ..models.formats import resolve_spec_format
from ..models.spec import ModelSpec, parse_spec
from ..principles import LLAMA2_DEFAULT_SYSTEM_PROMPT

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TABLES = {"study": False, "items": False, "settings": False, "judges": True, "models": True}
_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "study": {
        "name": str,
        "description": str,
        "engine": str,
        "batch": bool,
        "batch_timeout": (int, float),
        "batch_poll": (int, float),
    },
    "items": {
        "split": str,
        "sources": list,
        "principles": list,
        "sample": int,
        "seed": int,
        "limit": int,
        "input": str,
        "data": str,
    },
    "settings": {"max_new_tokens": int, "system_prompt": str},
    "judges": {
        "name": str,
        "spec": str,
        "concurrency": int,
        "timeout": (int, float),
        "batch_size": int,
        "max_attempts": int,
    },
    "models": {
        "name": str,
        "spec": str,
        "prompt_format": str,
        "group": str,
        "batch_size": int,
        "concurrency": int,
        "timeout": (int, float),
        "tensor_parallel_size": int,
        "replicas": int,
        "max_new_tokens": int,
        "system_prompt": str,
        "model_version": str,
    },
}
_REQUIRED = {"study": ("name",), "judges": ("spec",), "models": ("name", "spec")}
_OPTION_KEYS = (
    "batch_size",
    "concurrency",
    "timeout",
    "tensor_parallel_size",
    "replicas",
    "max_attempts",
    "model_version",
)


@dataclass(frozen=True)
class StudyJudge:
    name: str
    spec: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyModel:
    name: str
    spec: str
    """The spec as typed (credentials included: for loading only; show `redact_spec(spec)`)."""
    prompt_format: str = "chat"
    group: str | None = None
    settings: EvalSettings = field(default_factory=EvalSettings)
    options: dict[str, Any] = field(default_factory=dict)
    parsed: ModelSpec | None = field(default=None, compare=False, repr=False)
    """`spec` parsed once where the study was read (the CLI or `load_study`); every later step uses it."""

    @property
    def model(self) -> ModelSpec:
        """The parsed spec (parsed here only for a `StudyModel` built without one)."""
        return self.parsed if self.parsed is not None else parse_spec(self.spec)


@dataclass(frozen=True)
class Study:
    """A parsed, validated study file."""

    name: str
    path: Path
    items: ItemSelection
    judges: tuple[StudyJudge, ...]
    models: tuple[StudyModel, ...]
    description: str = ""
    engine: str = "local"
    tag_runs: bool = True
    """Tag runs `study:<name>` (False for an evaluation typed on the command line)."""
    batch: bool = False
    """Send API models and LLM judges through the providers' batch APIs (docs/models.md, "Batch mode")."""
    batch_timeout: float | None = None
    """Seconds to wait for batches before cancelling them and asking the rest live (None: no limit)."""
    batch_poll: float = 30.0
    """Seconds between batch polls."""

    @property
    def tag(self) -> str:
        return f"study:{self.name}"

    def model(self, name: str) -> StudyModel:
        for m in self.models:
            if m.name == name:
                return m
        raise UserError(f"{self.path}: no model named '{name}' (models: {', '.join(m.name for m in self.models)})")


class _Lines:
    """Line numbers of tables and keys in the raw TOML text, for error messages."""

    def __init__(self, text: str) -> None:
        self.headers: dict[tuple[str, int], int] = {}
        self.keys: dict[tuple[str, int, str], int] = {}
        counts: dict[str, int] = {}
        table, index = "", 0
        for no, line in enumerate(text.splitlines(), start=1):
            s = line.strip()
            if m := re.match(r"^\[\[\s*([A-Za-z0-9_-]+)\s*\]\]", s):
                table = m.group(1)
                index = counts.get(table, 0)
                counts[table] = index + 1
                self.headers[(table, index)] = no
            elif m := re.match(r"^\[\s*([A-Za-z0-9_-]+)\s*\]", s):
                table, index = m.group(1), 0
                self.headers.setdefault((table, 0), no)
            elif m := re.match(r'^"?([A-Za-z0-9_-]+)"?\s*=', s):
                self.keys.setdefault((table, index, m.group(1)), no)

    def of(self, table: str, index: int = 0, key: str | None = None) -> int:
        if key is not None and (table, index, key) in self.keys:
            return self.keys[(table, index, key)]
        return self.headers.get((table, index), 1)


def _where(table: str, index: int, many: bool) -> str:
    return f"[[{table}]] #{index + 1}" if many else f"[{table}]"


def load_study(path: str | Path) -> Study:
    """Read and validate a study file; raises `UserError` naming the line of the first mistake."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the study file {path}: {exc.strerror or exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    return parse_study(raw, path, _Lines(text))


def parse_study(raw: dict, path: Path, lines: _Lines | None = None) -> Study:
    lines = lines or _Lines("")

    def fail(line: int, msg: str) -> UserError:
        return UserError(f"{path}:{line}: {msg}")

    for table, value in raw.items():
        if table not in _TABLES:
            raise fail(lines.of(table), f"unknown table [{table}]; use {', '.join(_TABLES)}")
        many = _TABLES[table]
        if many and not isinstance(value, list):
            raise fail(lines.of(table), f"write [[{table}]] (one table per entry), not [{table}]")
        if not many and not isinstance(value, dict):
            raise fail(lines.of(table), f"write [{table}] once, not [[{table}]]")
    for table in ("study", "judges", "models"):
        if table not in raw:
            raise fail(1, f"missing [{table}]" if table == "study" else f"missing [[{table}]]: give at least one")

    def entries(table: str) -> list[tuple[int, dict]]:
        value = raw.get(table, [] if _TABLES[table] else {})
        return list(enumerate(value)) if _TABLES[table] else [(0, value)]

    for table in _TABLES:
        for index, entry in entries(table):
            many = _TABLES[table]
            for key, value in entry.items():
                allowed = _KEYS[table]
                if key not in allowed:
                    raise fail(
                        lines.of(table, index, key),
                        f"unknown key '{key}' in {_where(table, index, many)}; known keys: {', '.join(allowed)}",
                    )
                want = allowed[key]
                if (isinstance(value, bool) and want is not bool) or not isinstance(value, want):
                    kinds = {
                        "int": "whole number",
                        "str": "string",
                        "list": "list",
                        "float": "number",
                        "bool": "true or false",
                    }
                    names = " or ".join(kinds[t.__name__] for t in (want if isinstance(want, tuple) else (want,)))
                    raise fail(
                        lines.of(table, index, key),
                        f"'{key}' in {_where(table, index, many)} must be a {names}, not {value!r}",
                    )
            for key in _REQUIRED.get(table, ()):
                if key not in entry:
                    raise fail(lines.of(table, index), f"{_where(table, index, many)} needs '{key}'")

    study = raw["study"]
    name = study["name"]
    if not _NAME.match(name):
        raise fail(lines.of("study", 0, "name"), f"study name '{name}' must be letters, digits, '.', '_' or '-'")
    engine = study.get("engine", "local")
    if engine != "local" and not (engine == "ray" or engine.startswith("ray:")):
        raise fail(lines.of("study", 0, "engine"), f"engine '{engine}' is unknown; use local, ray or ray:ADDRESS")

    for key in ("batch_timeout", "batch_poll"):
        if key in study and not study[key] > 0:
            raise fail(lines.of("study", 0, key), f"'{key}' must be a positive number of seconds")
    items = _items(raw.get("items", {}), path, lines, fail)
    base = raw.get("settings", {})
    judges = []
    for i, j in entries("judges"):
        jname = j.get("name", f"judge{i + 1}")
        _check_name(jname, [x.name for x in judges], "judge", lines.of("judges", i, "name"), fail)
        _check_spec(j["spec"], lines.of("judges", i, "spec"), fail, judge=True)
        judges.append(StudyJudge(jname, j["spec"], {k: j[k] for k in _OPTION_KEYS if k in j}))
    models = []
    for i, m in entries("models"):
        m = {**m, "spec": expand_spec(m.get("spec", ""))}
        _check_name(m["name"], [x.name for x in models], "model", lines.of("models", i, "name"), fail)
        parsed = _check_spec(m["spec"], lines.of("models", i, "spec"), fail)  # the one parse, kept in the record
        fmt = m.get("prompt_format", "chat")
        try:  # `paper` resolved as the backend will (name or folder), for the family's system text
            resolved = resolve_spec_format(parsed, fmt)
        except UserError as exc:
            raise fail(lines.of("models", i, "prompt_format"), f"model '{m['name']}': {exc}") from None
        if "model_version" in m:
            from ..models.openai_backend import check_model_version

            try:
                check_model_version(m["model_version"])
            except UserError as exc:
                raise fail(lines.of("models", i, "model_version"), f"model '{m['name']}': {exc}") from None
            if not m["spec"].startswith("openai:"):
                raise fail(
                    lines.of("models", i, "model_version"),
                    f"model '{m['name']}': model_version is for "
                    "openai: models; a local model is identified by its weights already",
                )
        for key in ("max_new_tokens", "batch_size", "concurrency", "tensor_parallel_size", "replicas"):
            if key in m and m[key] < 1:
                raise fail(lines.of("models", i, key), f"'{key}' of model '{m['name']}' must be at least 1")
        settings = _settings({**base, **{k: m[k] for k in ("max_new_tokens", "system_prompt") if k in m}}, resolved)
        models.append(
            StudyModel(
                m["name"],
                m["spec"],
                fmt,
                m.get("group"),
                settings,
                {k: m[k] for k in _OPTION_KEYS if k in m},
                parsed=parsed,
            )
        )
    return Study(
        name,
        path,
        items,
        tuple(judges),
        tuple(models),
        study.get("description", ""),
        engine,
        batch=study.get("batch", False),
        batch_timeout=study.get("batch_timeout"),
        batch_poll=float(study.get("batch_poll", 30.0)),
    )


def check_study(study: Study) -> None:
    """Every check `medsafety eval` makes of its specs before it creates anything, on every judge and model
    of the study: local paths exist, extras are installed, API keys are set (`validate_judge_spec`,
    `validate_spec`), and `replicas` asks for the ray engine. `load_study` checks only the file's form, so
    that `study status` and `study report` still work when a model folder is gone.

    Raises:
        UserError: the first failing spec, naming the file, its line and the model or judge.
    """
    from ..judging.registry import validate_judge_spec
    from ..models.spec import validate_spec

    try:
        lines = _Lines(study.path.read_text(encoding="utf-8"))
    except OSError:
        lines = _Lines("")

    def fail(line: int, msg: str) -> UserError:
        return UserError(f"{study.path}:{line}: {msg}")

    for i, j in enumerate(study.judges):
        try:
            validate_judge_spec(j.spec, role=f"judge '{j.name}'")
        except UserError as exc:
            raise fail(lines.of("judges", i, "spec"), str(exc)) from None
    for i, m in enumerate(study.models):
        try:
            validate_spec(m.model)
        except UserError as exc:
            raise fail(lines.of("models", i, "spec"), f"model '{m.name}': {exc}") from None
        replicas = m.options.get("replicas", 1)
        if replicas != 1 and study.engine == "local":
            raise fail(
                lines.of("models", i, "replicas"),
                f"model '{m.name}': replicas = {replicas} needs "
                'engine = "ray" in [study] (the local engine runs one copy of the model)',
            )


def expand_spec(spec: str) -> str:
    """`{cache}` in a local model spec is the medsafetybench cache folder (where `medsafety demo` builds its
    tiny model); a path starting with `~` is the home folder."""
    from ..data.official import cache_root

    backend, sep, rest = spec.partition(":")
    if backend not in ("hf", "vllm") or not sep:
        return spec
    rest = rest.replace("{cache}", str(cache_root()))
    if rest.startswith("~"):
        rest = str(Path(rest).expanduser())
    return f"{backend}:{rest}"


def _settings(d: dict, prompt_format: str | None = None) -> EvalSettings:
    """`system_prompt`: absent or "default" -> the format's default (`tasks.settings_from`);
    "llama2-default" -> Llama-2's default system prompt whatever the format."""
    prompt = d.get("system_prompt")
    if prompt is not None and prompt.strip().lower() == "default":
        prompt = None
    elif prompt is not None and prompt.strip().lower() == "llama2-default":
        prompt = LLAMA2_DEFAULT_SYSTEM_PROMPT
    return settings_from(prompt, d.get("max_new_tokens", 512), prompt_format)


def _items(d: dict, path: Path, lines: _Lines, fail: Any) -> ItemSelection:
    from ..data import ITEM_SPLITS, SOURCES

    split = d.get("split", "eval")
    if split not in ITEM_SPLITS:
        raise fail(lines.of("items", 0, "split"), f"split '{split}' is unknown; use one of {', '.join(ITEM_SPLITS)}")
    sources = d.get("sources")
    for s in sources or ():
        if s not in SOURCES:
            raise fail(lines.of("items", 0, "sources"), f"source {s!r} is unknown; use {', '.join(SOURCES)}")
    principles = d.get("principles")
    for p in principles or ():
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 9:
            raise fail(lines.of("items", 0, "principles"), f"principle {p!r} must be a whole number 1-9")
    for key in ("sample", "limit"):
        if key in d and d[key] < 1:
            raise fail(lines.of("items", 0, key), f"'{key}' must be at least 1")
    input_file = d.get("input")
    if input_file is not None:
        resolved = (path.parent / input_file) if not Path(input_file).is_absolute() else Path(input_file)
        if not resolved.is_file():
            raise fail(lines.of("items", 0, "input"), f"input file {resolved} does not exist")
        input_file = str(resolved)
    data = d.get("data")
    if data is not None and not Path(data).is_absolute():
        data = str(path.parent / data)
    return ItemSelection(
        split,
        tuple(sources) if sources else None,
        tuple(principles) if principles else None,
        d.get("sample"),
        d.get("seed", 0),
        d.get("limit"),
        input_file,
        data,
    )


def check_name(name: str, seen: Sequence[str], what: str) -> None:
    """A model or judge name: 1-64 letters, digits, '.', '_' or '-', not among `seen`.

    Raises:
        UserError: saying what is wrong with the name.
    """
    if not _NAME.match(name):
        raise UserError(f"{what} name '{name}' must be 1-64 letters, digits, '.', '_' or '-'")
    if name in seen:
        raise UserError(f"duplicate {what} name '{name}': every {what} needs its own name")


def _check_name(name: str, seen: list[str], what: str, line: int, fail: Any) -> None:
    try:
        check_name(name, seen, what)
    except UserError as exc:
        raise fail(line, str(exc)) from None


def _check_spec(spec: str, line: int, fail: Any, judge: bool = False) -> Any:
    """The parsed spec (`ParsedJudgeSpec` for a judge, `ModelSpec` for a model); errors name the line."""
    from ..judging.registry import parse_judge_spec

    try:
        return (parse_judge_spec if judge else parse_spec)(spec)  # judges: offline, a model spec, or NAME:ARGS
    except UserError as exc:
        raise fail(line, str(exc)) from None
