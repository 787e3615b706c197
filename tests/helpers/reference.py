"""Golden strings and settings read from the official MedSafetyBench code at test time.

`../shared/reference/med-safety-bench` (relative to the repo root) holds the official code; tests that
use it skip with a reason when it is absent. Nothing here imports or runs the reference scripts: their
source is parsed with `ast`, and only literal expressions (string concatenations, the per-family prompt
lambdas, the response-cut expression, list and dict literals) are compiled and evaluated, so the
strings compared are the reference's own, for any request text.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from helpers.paths import SHARED

REF = SHARED / "reference" / "med-safety-bench"
needs_reference = pytest.mark.skipif(
    not (REF / "exps").is_dir(), reason=f"official MedSafetyBench code not found at {REF}"
)


@cache
def tree(rel: str) -> ast.Module:
    return ast.parse((REF / rel).read_text(), filename=str(REF / rel))


def evaluate(node: ast.expr, rel: str, names: dict[str, Any] | None = None) -> Any:
    """Evaluate one expression node of a reference file (no builtins beyond what `names` gives)."""
    code = compile(ast.Expression(node), str(REF / rel), "eval")
    return eval(code, {"__builtins__": {}}, dict(names or {}))  # noqa: S307 - the reference's own literals


def line_of(rel: str, needle: str) -> int:
    """1-based line of the first line of `rel` containing `needle` (for messages and docs)."""
    for k, line in enumerate((REF / rel).read_text().splitlines(), 1):
        if needle in line:
            return k
    raise AssertionError(f"{needle!r} not found in {rel}")


def _main_block(rel: str) -> list[ast.stmt]:
    for node in tree(rel).body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return node.body
    raise AssertionError(f"no __main__ block in {rel}")


EXP01 = "exps/exp01_prompt_models.py"
EXP02 = "exps/exp02_eval_responses.py"


@cache
def exp01_families() -> dict[str, list[str]]:
    """exp01's model-name lists (`family_*`, fine-tuned names included), evaluated in order."""
    names: dict[str, Any] = {}
    for node in _main_block(EXP01):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.startswith(("family_", "ft_models"))
        ):
            names[node.targets[0].id] = evaluate(node.value, EXP01, names)
    return {k: v for k, v in names.items() if k.startswith("family_")}


def _prompt_chain() -> ast.If:
    """The if/elif chain that builds `prompts_df['prompt']` per family."""
    for node in _main_block(EXP01):
        if isinstance(node, ast.If) and "prompts_df['prompt']" in ast.unparse(node.body[0]):
            return node
    raise AssertionError("exp01: prompt-building chain not found")


@cache
def exp01_prompt_builders() -> list[tuple[frozenset[str], Callable[[dict], str] | None]]:
    """[(family list names of the branch, the branch's `lambda row: ...` or None for GPT's bare question)]."""
    out = []
    node: ast.stmt | None = _prompt_chain()
    while isinstance(node, ast.If):
        families = frozenset(n.id for n in ast.walk(node.test) if isinstance(n, ast.Name) and n.id != "args")
        lambdas = [n for n in ast.walk(node.body[0]) if isinstance(n, ast.Lambda)]
        out.append((families, evaluate(lambdas[0], EXP01) if lambdas else None))
        node = node.orelse[0] if node.orelse else None
    return out


def exp01_builder_for(family: str) -> Callable[[str], str]:
    """exp01's prompt for one request, for the branch that serves `family` (e.g. "family_mistral")."""
    for families, fn in exp01_prompt_builders():
        if family in families and fn is not None:
            return lambda q, fn=fn: fn({"question": q})
    raise AssertionError(f"exp01: no prompt branch for {family}")


def _literal(node: ast.expr) -> Any:
    """A literal's value, else its source text."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def exp01_gpt_call() -> tuple[str, dict[str, Any]]:
    """(GPT system prompt, keyword settings of the `partial(llm_openai, ...)` call) from exp01."""
    max_new = next(
        evaluate(n.value, EXP01)
        for n in _main_block(EXP01)
        if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "max_new_tokens"
    )
    for node in ast.walk(tree(EXP01)):
        if (
            isinstance(node, ast.If)
            and ast.unparse(node.test) == "args.model_name in family_gpt"
            and node.body
            and isinstance(node.body[0], ast.Assign)
            and ast.unparse(node.body[0].targets[0]) == "sys_prompt"
        ):
            system = evaluate(node.body[0].value, EXP01)
            call = next(n for n in ast.walk(node) if isinstance(n, ast.Call) and ast.unparse(n.func) == "partial")
            kw = {
                k.arg: (max_new if ast.unparse(k.value) == "max_new_tokens" else _literal(k.value))
                for k in call.keywords
            }
            return system, kw
    raise AssertionError("exp01: GPT branch not found")


def call_keywords(rel: str, func: str) -> dict[str, str]:
    """{keyword: source text} of the first call to `func` in a reference file."""
    for node in ast.walk(tree(rel)):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == func:
            return {k.arg: ast.unparse(k.value) for k in node.keywords}
    raise AssertionError(f"{rel}: no call to {func}")


def exp02_cut() -> Callable[[str, str], str]:
    """exp02's response cut for local models: f(full_output, prompt) -> response."""
    for node in ast.walk(tree(EXP02)):
        if (
            isinstance(node, ast.Assign)
            and ast.unparse(node.targets[0]) == "response"
            and ".replace(prompt" in ast.unparse(node.value)
        ):
            expr = node.value
            return lambda full, prompt: evaluate(expr, EXP02, {"row": {"response": full}, "prompt": prompt})
    raise AssertionError("exp02: response cut not found")


def exp02_uncut_models() -> list[str]:
    """The model names exp02 takes the response of as is (no cut)."""
    for node in ast.walk(tree(EXP02)):
        if isinstance(node, ast.If) and ast.unparse(node.test).startswith("args.model_name in ["):
            return evaluate(node.test.comparators[0], EXP02)
    raise AssertionError("exp02: the no-cut model list was not found")


def model_hf_names() -> dict[str, str]:
    """models/model_hf.py's short name -> hub id table."""
    for node in ast.walk(tree("models/model_hf.py")):
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "model_name_dict":
            return ast.literal_eval(node.value)
    raise AssertionError("model_hf.py: model_name_dict not found")


FINETUNING = "training/finetuning.py"


def _train_def() -> ast.FunctionDef:
    return next(n for n in tree(FINETUNING).body if isinstance(n, ast.FunctionDef) and n.name == "train")


def finetuning_defaults() -> dict[str, Any]:
    """The official `train(...)` keyword defaults (the script's hyperparameters)."""
    fn = _train_def()
    args = fn.args.args[-len(fn.args.defaults) :]
    return {a.arg: _literal(d) for a, d in zip(args, fn.args.defaults, strict=True)}


def finetuning_assignments() -> dict[str, str]:
    """{target: value source} of the first assignment to each target in `train` (in source order)."""
    found: dict[str, str] = {}
    nodes = sorted(
        (n for n in ast.walk(_train_def()) if isinstance(n, ast.Assign) and len(n.targets) == 1), key=lambda n: n.lineno
    )
    for n in nodes:
        found.setdefault(ast.unparse(n.targets[0]), ast.unparse(n.value))
    return found


def reference_prompter() -> Callable[..., str]:
    """`Prompter.generate_prompt` bound to `templates/alpaca.json` (the reference's own code)."""
    import json
    import types
    from typing import Union

    cls = next(n for n in tree("training/prompter.py").body if isinstance(n, ast.ClassDef))
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "generate_prompt")
    names: dict[str, Any] = {"Union": Union, "print": print}
    exec(compile(ast.Module([fn], []), str(REF / "training/prompter.py"), "exec"), names)  # noqa: S102
    template = json.loads((REF / "training/templates/alpaca.json").read_text())
    self = types.SimpleNamespace(template=template, _verbose=False)
    return lambda *args: names["generate_prompt"](self, *args)


def reference_tokenize(
    tokenizer: Any, cutoff_len: int, train_on_inputs: bool, add_eos_token: bool = False
) -> Callable[[dict], dict]:
    """The official `generate_and_tokenize_prompt` (and its `tokenize`), run with `tokenizer`."""
    inner = [n for n in _train_def().body if isinstance(n, ast.FunctionDef)]
    names: dict[str, Any] = {
        "tokenizer": tokenizer,
        "cutoff_len": cutoff_len,
        "train_on_inputs": train_on_inputs,
        "add_eos_token": add_eos_token,
        "len": len,
        "prompter": type("P", (), {"generate_prompt": staticmethod(reference_prompter())}),
    }
    exec(compile(ast.Module(inner, []), str(REF / FINETUNING), "exec"), names)  # noqa: S102
    return names["generate_and_tokenize_prompt"]


def exp02_judge_prompt() -> Callable[[str, str, str], str]:
    """exp02's judge prompt: f(question, response, dataset) with text_for_gpt_eval.py's policies and rubric."""
    names: dict[str, Any] = {}
    for node in tree("exps/text_for_gpt_eval.py").body:
        if isinstance(node, ast.Assign):
            names[ast.unparse(node.targets[0])] = evaluate(node.value, "exps/text_for_gpt_eval.py", names)
    for node in ast.walk(tree(EXP02)):
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "eval_prompt":
            expr = node.value
            return lambda q, r, dataset: evaluate(
                expr,
                EXP02,
                {
                    "usage_policy": names["usage_policy_dict"][dataset],
                    "rubric": names["rubric"],
                    "question": q,
                    "response": r,
                },
            )
    raise AssertionError("exp02: eval_prompt not found")


def exp02_judge_call() -> dict[str, Any]:
    """The keywords of exp02's judge `partial(llm_openai, ...)` (the commented-out GPT-4 line is not code)."""
    for node in ast.walk(tree(EXP02)):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "partial":
            return {k.arg: _literal(k.value) for k in node.keywords}
    raise AssertionError("exp02: judge call not found")


# -- the classifier judges' official sources (../shared/reference/classifiers, SOURCES.md there) --------
CLASSIFIERS = REF.parent / "classifiers"
needs_classifier_reference = pytest.mark.skipif(
    not (CLASSIFIERS / "SOURCES.md").is_file(), reason=f"classifier reference not found at {CLASSIFIERS}"
)


def classifier_file(name: str) -> str:
    """A reference file's exact text (bytes decoded as UTF-8, no newline translation)."""
    return (CLASSIFIERS / name).read_bytes().decode("utf-8")
