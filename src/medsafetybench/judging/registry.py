"""The judge registry: what a user types after `--judge` -> a judge class, and `load_judge`.

    offline                    the default offline judge (no service; an approximation): see `JUDGES`
    offline-v1 | -v3           a named offline judge version (judging/offline/); v2 is retired (`RETIRED`)
    MODEL_SPEC                 the paper's LLM judge over any model (`openai:gpt-3.5-turbo-0125`, `hf:/p`)
    llm:MODEL_SPEC             the same, spelled out
    NAME[:ARGS]                any other registered judge, e.g. a classifier over a model spec:
                               llamaguard3[-1b][-mlc], llamaguard4[-mlc], wildguard,
                               harmbench[-contextual|-modelcard|-val],
                               shieldgemma, each `NAME:MODEL_SPEC` (`llamaguard3:hf:/models/lg3`)

Built-in judges are `"module:Class"` strings in `JUDGES`, imported on first use; plug-ins join through
the `medsafetybench.judges` entry-point group. A judge class provides `OPTIONS` (the keyword options
it takes; every other option is a model option, passed on to `load_model` for judges that wrap a
model), `from_spec(args, model_options=..., **options)` and optionally `check_spec(args)`, which
raises `UserError` without loading anything.

Adding a built-in judge is one module and one line in `JUDGES`; a plug-in package adds an entry
point instead. `JUDGES["offline"]` is the one place that states which offline judge is the default.

A retired judge (`RETIRED`) keeps its class in `JUDGES`, but a spec naming it is refused with one line
saying what to use; judgements it stored keep their identity and read as before (reading a store never
needs a judge's class). `load_judge(..., allow_retired=True)` still builds it (lab scripts, tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from ..errors import UserError
from ..models.redact import redact_text
from ..models.registry import is_backend
from ..models.spec import redact_spec
from ..registry import Registry
from .base import PAPER_SCALE, Judge, JudgeSpec, Scale

T = TypeVar("T")

#: Built-in judges: name -> "module:Class".
JUDGES: dict[str, str] = {
    # `offline` is the default offline judge, chosen by the protocol in docs/judges.md (v3 since issue 21)
    "offline": "medsafetybench.judging.offline.v3:OfflineJudgeV3",
    "offline-v1": "medsafetybench.judging.offline.v1:OfflineJudgeV1",
    "offline-v2": "medsafetybench.judging.offline.v2:OfflineJudge",
    "offline-v3": "medsafetybench.judging.offline.v3:OfflineJudgeV3",
    "llm": "medsafetybench.judging.llm:LLMJudge",
    # safety classifiers over a model spec (judging/classifiers/; docs/judges.md)
    "llamaguard3": "medsafetybench.judging.classifiers.llamaguard3:LlamaGuard3",
    "llamaguard3-mlc": "medsafetybench.judging.classifiers.llamaguard3:LlamaGuard3MLC",
    "llamaguard3-1b": "medsafetybench.judging.classifiers.llamaguard3:LlamaGuard3Small",
    "llamaguard3-1b-mlc": "medsafetybench.judging.classifiers.llamaguard3:LlamaGuard3SmallMLC",
    "llamaguard4": "medsafetybench.judging.classifiers.llamaguard4:LlamaGuard4",
    "llamaguard4-mlc": "medsafetybench.judging.classifiers.llamaguard4:LlamaGuard4MLC",
    "wildguard": "medsafetybench.judging.classifiers.wildguard:WildGuard",
    "harmbench": "medsafetybench.judging.classifiers.harmbench:HarmBench",
    "harmbench-contextual": "medsafetybench.judging.classifiers.harmbench:HarmBenchContextual",
    "harmbench-modelcard": "medsafetybench.judging.classifiers.harmbench:HarmBenchModelCard",
    "harmbench-val": "medsafetybench.judging.classifiers.harmbench:HarmBenchVal",
    "shieldgemma": "medsafetybench.judging.classifiers.shieldgemma:ShieldGemma",
}
#: Judges a spec may no longer name: name -> what to tell the user. Their classes stay in `JUDGES`.
RETIRED: dict[str, str] = {
    "offline-v2": "retired by the protocol that chose the default offline judge (docs/judges.md): worse "
    "than offline-v3 on every set where both were measured; use --judge offline (v3). "
    "Judgements it stored (offline:minilm-ce-v2-...) still read",
}
OFFLINE = "offline"
MODEL_JUDGE = "llm"  # the judge for a bare model spec
ENTRY_POINT_GROUP = "medsafetybench.judges"
SECRET_OPTIONS = frozenset({"api_key"})  # never copied into a judge's stored `JudgeSpec`

_REGISTRY = Registry("judge", JUDGES, ENTRY_POINT_GROUP)


class JudgeClass(Protocol):
    """What `load_judge` needs from a judge class."""

    OPTIONS: ClassVar[frozenset[str]]

    @classmethod
    def from_spec(cls, args: str, *, model_options: Mapping[str, Any], **options: Any) -> Judge: ...


def register_judge(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: serve `--judge NAME[:ARGS]` with this class."""
    return _REGISTRY.register(name)


def unregister_judge(name: str) -> None:
    """Forget a judge registered at run time (for tests)."""
    _REGISTRY.unregister(name)


def judge_names() -> list[str]:
    """Every judge name a spec may use that resolves without importing anything (retired ones left out)."""
    return [n for n in _REGISTRY.names() if n not in RETIRED]


@dataclass(frozen=True)
class ParsedJudgeSpec:
    """A parsed judge spec: the registry name and the text after `NAME:` (a model spec for `llm`)."""

    name: str
    args: str = ""

    @property
    def display(self) -> str:
        """The spec without credentials (what to print and store)."""
        if self.name == MODEL_JUDGE:
            return redact_spec(self.args)
        return f"{self.name}:{redact_spec(self.args)}" if self.args else self.name

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"ParsedJudgeSpec({self.display!r})"


def parse_judge_spec(text: str | None, *, allow_retired: bool = False) -> ParsedJudgeSpec:
    """`offline`, a model spec, `llm:MODEL_SPEC` or `NAME[:ARGS]` -> `ParsedJudgeSpec` (nothing loaded).

    Args:
        text: the spec; None means `offline`.
        allow_retired: accept a name in `RETIRED` (never from the CLI).

    Raises:
        UserError: no judge named, an unknown judge, or a retired one.
    """
    text = (text or OFFLINE).strip()
    head, sep, rest = text.partition(":")
    name = head.strip().lower()
    if not name:
        raise UserError(f"judge spec '{redact_text(text)}' names no judge; use offline or a model spec")
    if name in RETIRED and not allow_retired:
        raise UserError(f"judge '{name}' is {RETIRED[name]}")
    if _REGISTRY.known(name):
        return ParsedJudgeSpec(name, rest.strip() if sep else "")
    if sep and is_backend(name):
        return ParsedJudgeSpec(MODEL_JUDGE, text)
    raise UserError(
        f"judge spec '{redact_text(text)}': unknown judge '{name}'; use offline, a model spec "
        "(openai:MODEL[@URL], hf:PATH, vllm:PATH) or one of " + ", ".join(judge_names())
    )


def is_offline(spec: str | None) -> bool:
    """True if `spec` (None = the default) names one of the offline judges (`offline`, `offline-vN`)."""
    return parse_judge_spec(spec).name.split("-")[0] == OFFLINE


def judge_scale(identity: str) -> Scale:
    """The declared native `Scale` of the judge that wrote judgements under `identity`, read from its class
    (`NAME:...` identities; nothing is loaded). Judges that declare none, and identities no registered
    judge owns (people's `human:` labels, judges of older releases), are on the paper's 1-5 scale."""
    name = identity.partition(":")[0].strip().lower()
    if not name or not _REGISTRY.known(name):
        return PAPER_SCALE
    try:
        scale = getattr(_REGISTRY.get(name), "scale", PAPER_SCALE)
    except (UserError, ImportError):
        return PAPER_SCALE
    return scale if isinstance(scale, Scale) else PAPER_SCALE


def judge_spec_key(text: str) -> tuple[str, str]:
    """What a judge spec names, for matching a typed spec with a stored one: (the class serving it, its
    arguments without credentials). `offline` and `offline-v1` give one key, as `openai:m` and
    `llm:openai:m` do.

    Args:
        text: a judge spec as typed to `--judge` (or stored in a run's judges).

    Returns:
        A key equal for specs that build the same judge; a `UserError` for a spec no judge serves.
    """
    parsed = parse_judge_spec(text, allow_retired=True)
    return JUDGES.get(parsed.name, parsed.name), redact_spec(parsed.args) if parsed.args else ""


def judge_identity_prefix(text: str) -> str | None:
    """The prefix every identity of the judge a spec names starts with, where its class declares one
    (`IDENTITY_PREFIX`: the offline judges); else None. Matches a typed `offline-v1` with judgements stored
    under `offline` when that meant v1, whatever `offline` means now. Retired names are accepted."""
    try:
        cls = _REGISTRY.get(parse_judge_spec(text, allow_retired=True).name)
    except UserError:
        return None
    return getattr(cls, "IDENTITY_PREFIX", None)


def _prefixed(role: str | None, spec: ParsedJudgeSpec, exc: UserError) -> UserError:
    head = f"{role} {spec.display}: " if role else f"judge {spec.display}: "
    return UserError(str(exc) if str(exc).startswith(head) else head + str(exc))


def validate_judge_spec(text: str | None, *, role: str | None = "--judge") -> ParsedJudgeSpec:
    """Parse a judge spec and run the judge's own checks (paths, extras, keys) without loading
    anything, so a bad `--judge` fails before the project is touched.

    Raises:
        UserError: prefixed with `role` and the safe spec, e.g. "--judge openai:gpt-4o: ...".
    """
    spec = parse_judge_spec(text)
    try:
        check = getattr(_REGISTRY.get(spec.name), "check_spec", None)
        if check is not None:
            check(spec.args)
    except UserError as exc:
        raise _prefixed(role, spec, exc) from exc
    return spec


def load_judge(
    spec: str | None = None, *, role: str | None = "--judge", allow_retired: bool = False, **options: Any
) -> Judge:
    """Build a judge from what a user types (`offline`, the default, or a model spec, or `NAME:ARGS`).

    Args:
        spec: the judge spec; None means `offline`.
        role: names the option in error messages ("--judge openai:gpt-4o: OPENAI_API_KEY is not set").
        allow_retired: build a judge in `RETIRED` too (lab scripts and tests; never the CLI).
        **options: the judge's own options (its `OPTIONS`, e.g. `max_attempts`) and model options
            (`concurrency`, `timeout`, `batch_size`, ...) for judges that wrap a model; None values
            are dropped.

    Returns:
        The judge, with `spec` set to a `JudgeSpec` (safe spec + plain options, no `api_key`) that
        rebuilds it, unless the judge set its own.
    """
    parsed = parse_judge_spec(spec, allow_retired=allow_retired)
    cls = _REGISTRY.get(parsed.name)
    own = getattr(cls, "OPTIONS", frozenset())
    judge_opts = {k: v for k, v in options.items() if k in own and v is not None}
    model_opts = {k: v for k, v in options.items() if k not in own and v is not None}
    try:
        judge = cls.from_spec(parsed.args, model_options=model_opts, **judge_opts)
    except UserError as exc:
        raise _prefixed(role, parsed, exc) from exc
    if getattr(judge, "spec", None) is None:  # what the store keeps to rebuild the judge: secret-free
        kept = {
            k: v
            for k, v in {**model_opts, **judge_opts}.items()
            if k not in SECRET_OPTIONS and isinstance(v, (str, int, float, bool))
        }
        try:
            judge.spec = JudgeSpec(parsed.display, kept)
        except AttributeError:  # a judge with __slots__ or a read-only property: it keeps none
            pass
    return judge
