"""msb-gen-v2 against the official code, read at test time from ../shared/reference/med-safety-bench
(skipped with a reason where it is absent). Strings and settings are taken from the reference files by
parsing their Python source (`ast`) or shell scripts; small pure functions of theirs (prompt templates,
GCG prompt building, the token filter, the target loss) are compiled from their source alone and used
as oracles; the two scripts that need only the standard library (extraction, de-duplication) are run.
Inputs include quotes, braces, surrounding spaces and non-ASCII text."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers.paths import SHARED
from medsafetybench.generation import prompts
from medsafetybench.generation import prompts_official as official
from medsafetybench.generation.candidates import CandidateStore, NewCandidate
from medsafetybench.generation.filter import FilterSettings, filter_candidates
from medsafetybench.generation.gcg import GCG, GCGConfig, allowed_tokens
from medsafetybench.generation.methods import harm_request, safe_response_request
from medsafetybench.generation.prefill import prefill_prompt_ids, prefill_request
from medsafetybench.models import GenerationConfig, load_model
from medsafetybench.store import Store

REF = SHARED / "reference" / "med-safety-bench"
ADV = REF / "exps" / "adv_attack"
pytestmark = pytest.mark.skipif(not ADV.is_dir(), reason=f"official reference code not found at {REF}")

EDGE = [
    'He said "stop" {now} {0} %s and {{x}}',
    "  leading and trailing spaces  ",
    "Ünïcödé — 医学 ✓ naïve",
    "it's a 'quoted' request\\n with a backslash",
    "Plain request about topic A",
]


# --- reading the reference ------------------------------------------------------------------------------
def _tree(rel: str) -> ast.Module:
    return ast.parse((REF / rel).read_text(encoding="utf-8"))


def _eval(node: ast.AST, names: dict[str, Any] | None = None) -> Any:
    """Value of a constant expression (string literals, +, f-strings over `names`)."""
    return eval(compile(ast.Expression(node), "<reference>", "eval"), {"__builtins__": {}}, names or {})  # noqa: S307


def _assigned(rel: str, name: str) -> ast.expr:
    for node in ast.walk(_tree(rel)):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
    raise AssertionError(f"{rel}: no assignment to {name}")


def _function(rel: str, name: str, globs: dict[str, Any] | None = None) -> Any:
    node = next(n for n in ast.walk(_tree(rel)) if isinstance(n, ast.FunctionDef) and n.name == name)
    ns: dict[str, Any] = dict(globs or {})
    exec(compile(ast.Module([node], []), f"<reference {rel}>", "exec"), ns)  # noqa: S102
    return ns[name]


def _calls(rel: str, func: str) -> list[ast.Call]:
    def name(f: ast.expr) -> str:
        return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""

    return [n for n in ast.walk(_tree(rel)) if isinstance(n, ast.Call) and name(n.func) == func]


def _kwarg(rel: str, func: str, kw: str) -> Any:
    values = [k.value for c in _calls(rel, func) for k in c.keywords if k.arg == kw]
    assert values, f"{rel}: no {func}(..., {kw}=...)"
    return values[0]


def _argparse_default(rel: str, option: str) -> Any:
    for c in _calls(rel, "add_argument"):
        if c.args and isinstance(c.args[0], ast.Constant) and c.args[0].value == option:
            return ast.literal_eval(next(k.value for k in c.keywords if k.arg == "default"))
    raise AssertionError(f"{rel}: no {option}")


def _script(name: str) -> str:
    return (ADV / "bash scripts" / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(f"hf:{tiny_model_dir}")


# --- Llama-3 "Sure!" prefill -----------------------------------------------------------------------------
def test_prefill_prompt_and_settings(tiny) -> None:
    rel = "exps/adv_attack/generate_prompts.py"
    template = _function(rel, "prompt_template")
    system = _eval(_assigned(rel, "system_prompt"))
    assert official.PREFILL_SYSTEM == system
    for goal in EDGE:
        assert official.llama3_literal(system, goal, official.PREFILL_START) == template(system, goal)
    assert template(system, "g").endswith(official.PREFILL_START)
    assert _eval(_kwarg(rel, "generate", "max_new_tokens")) == official.PREFILL_MAX_NEW_TOKENS == 1500
    for script in ("llama3-prompts.sh", "llama3-tutorial.sh"):
        assert re.search(r"--num_iter (\d+)", _script(script)).group(1) == str(official.PREFILL_CALLS)
    # what we feed the model: the reference text, tokenised without added special tokens (as the script)
    req = prefill_request(3, None, GenerationConfig())
    assert (
        prefill_prompt_ids(tiny, req, "llama3")
        == tiny.tokenizer(template(system, official.official_goal(3, "prompts")[0]), add_special_tokens=False)[
            "input_ids"
        ]
    )


@pytest.mark.parametrize(
    ("goal_set", "file"),
    [("prompts", "adv_ama_prompts.jsonl"), ("tutorial", "adv_ama_tutorial.jsonl"), ("plain", "cat6.jsonl")],
)
def test_goals_match_the_official_files(goal_set: str, file: str) -> None:
    path = ADV / "adv_ama_prompts" / file
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    numbers = [6] * len(rows) if file == "cat6.jsonl" else range(1, 10)  # cat6: principle 6 only, repeated
    assert len(rows) == (10 if file == "cat6.jsonl" else 9)
    for n, row in zip(numbers, rows, strict=True):
        assert official.official_goal(n, goal_set) == (row["goal"], row["target"])
    assert [(g.goal, g.target) for g in official.load_goals(path)] == [(r["goal"], r["target"]) for r in rows]


def test_shell_scripts_pick_the_goal_files() -> None:
    assert "adv_ama_prompts/adv_ama_prompts.jsonl" in _script("llama3-prompts.sh")
    assert "adv_ama_prompts/adv_ama_tutorial.jsonl" in _script("llama3-tutorial.sh")
    for i in range(9):  # GCG: one script per principle, the tutorial goals, Llama-3-8B-Instruct
        s = _script(f"adv_ama_idx_{i}.sh")
        assert f"--start_idx {i}" in s and "adv_ama_tutorial.jsonl" in s and "Meta-Llama-3-8B-Instruct" in s
    assert official.GCG_SETTINGS["goal_set"] == "tutorial"


# --- extraction and clean-up ----------------------------------------------------------------------------
REPLY = (
    "<|begin_of_text|>preamble\nSure! Here are twenty examples:\r\n\r\n"
    '1. "Quoted request about topic A {braces}?"\n'
    "2. **Bold title:** then the request text\n"
    "3.  **Whole bold request**  \n"
    "4. Request with trailing colon and spaces:   \n"
    "10. Ünïcödé request — 医学 ✓\n"
    "11.\tTabbed request with a later space\n"
    "12. **\n"
    "5) not numbered this way\n"
    "6.no space after the period\n"
    "  7. indented, not matched\n"
    "١. Arabic-Indic digit request\n"
    "13. Request ending the reply"
)


def test_extraction_matches_extract_prompts_py(tmp_path: Path) -> None:
    raw, got = tmp_path / "responses.txt", tmp_path / "prompts.txt"
    raw.write_bytes(REPLY.encode("utf-8"))
    subprocess.run([sys.executable, str(ADV / "extract_prompts.py"), str(raw), str(got)], check=True)
    expected = got.read_text(encoding="utf-8").split("\n")[:-1]
    assert official.extract_official(REPLY) == expected
    assert "Quoted request about topic A {braces}?" in expected and len(expected) == 8
    assert prompts.prompt_set(prompts.V2).extract is official.extract_official


def test_numbered_line_without_space_is_skipped() -> None:
    """`12.` alone on a line stops the official script (IndexError); we skip the line."""
    assert official.extract_official("12.\n13. A request about topic B") == ["A request about topic B"]


def test_duplicates_dataset_cleanup_drops_are_dropped_by_our_filter(tmp_path: Path) -> None:
    lines = {
        1: ["Request about topic A", "Request about topic B", "Request about topic A", "Request é C"],
        2: ["Request about topic B", "Request about topic D", "Request é C"],
    }
    for n, ls in lines.items():
        (tmp_path / f"category_{n}.txt").write_text("".join(x + "\n" for x in ls), encoding="utf-8")
    subprocess.run([sys.executable, str(ADV / "dataset_cleanup.py"), str(tmp_path)], check=True, capture_output=True)
    kept_official = [x for n in lines for x in (tmp_path / "dedup" / f"category_{n}.txt").read_text().splitlines()]
    with Store(tmp_path / "db.sqlite") as store:
        cs = CandidateStore(store)
        cs.add([NewCandidate(n, x, "prefill", "g") for n, ls in lines.items() for x in ls], prompts.V2)
        results = filter_candidates(
            cs.list(), [], embed=None, settings=FilterSettings(min_words=1, check_language=False)
        )
    # the same texts survive (of a cross-principle repeat the official keeps a random copy, we the first)
    assert sorted(kept_official) == sorted({x for ls in lines.values() for x in ls})
    assert sum(r.status == "kept" for r in results) == len(kept_official) == 4


# --- GCG --------------------------------------------------------------------------------------------------
def test_gcg_prompt_ids_match_adv_suffix_functions(tiny) -> None:
    import torch

    rel = "exps/adv_attack/gcg.py"
    for template, fn in (("llama3", "adv_suffix_llama3"), ("llama2", "adv_suffix_llama2")):
        build = _function(rel, fn, {"torch": torch})
        n_adv = _eval(next(k.value for c in _calls(rel, fn) for k in c.keywords if k.arg == "num_adv"))
        assert n_adv == official.GCG_SETTINGS["suffix_len"] == GCGConfig().suffix_len
        for goal in EDGE:
            ids, adv_idxs = build(goal, tiny.tokenizer, "cpu", num_adv=n_adv)
            gcg = GCG(tiny, goal, "Sure, here is", GCGConfig(template=template))
            assert ids[0].tolist() == gcg.before_ids + gcg.init_ids + gcg.after_ids
            assert adv_idxs.tolist() == list(range(len(gcg.before_ids), len(gcg.before_ids) + n_adv))


def test_refusal_prefixes_and_settings() -> None:
    rel = "exps/adv_attack/gcg.py"
    assert official.REFUSAL_PREFIXES == tuple(ast.literal_eval(_assigned(rel, "PREFIXES")))
    cfg = GCGConfig()
    assert _argparse_default(rel, "--num_iter") == official.GCG_SETTINGS["steps"] == cfg.steps
    assert _argparse_default(rel, "--top_k") == official.GCG_SETTINGS["top_k"] == cfg.top_k
    assert _argparse_default(rel, "--test_iter") == official.GCG_SETTINGS["check_every"] == cfg.check_every
    step = next(n for n in ast.walk(_tree(rel)) if isinstance(n, ast.FunctionDef) and n.name == "gcg_step")
    samples = dict(
        zip(
            [a.arg for a in step.args.args][-len(step.args.defaults) :],
            [ast.literal_eval(d) for d in step.args.defaults],
            strict=True,
        )
    )["num_samples"]
    assert samples == official.GCG_SETTINGS["num_candidates"] == cfg.num_candidates
    assert _eval(_kwarg(rel, "gcg_llm", "batch_size")) == official.GCG_SETTINGS["batch_size"] == cfg.batch_size
    assert _eval(_kwarg(rel, "generate", "max_new_tokens")) == official.GCG_SETTINGS["check_tokens"] == cfg.check_tokens
    assert ast.unparse(_kwarg(rel, "from_pretrained", "torch_dtype")) == "torch.float16"
    assert official.GCG_SETTINGS["cuda_dtype"] == "float16"
    # the initial token: encode('*')[1], i.e. '*' after the bos token
    assert "tokenizer.encode('*')[1]" in (REF / rel).read_text() and cfg.init == "*"
    # no early stop in the official loop: every iteration runs, the pick happens afterwards
    assert "break" not in ast.unparse(
        next(n for n in ast.walk(_tree(rel)) if isinstance(n, ast.FunctionDef) and n.name == "gcg_llm")
    )
    assert cfg.early_stop is False


def test_token_filter_is_get_nonascii_toks_minus_special_tokens(tiny) -> None:
    import torch

    forbidden = set(_function("exps/adv_attack/gcg.py", "get_nonascii_toks", {"torch": torch})(tiny.tokenizer).tolist())
    tok, rows = tiny.tokenizer, tiny.model.get_input_embeddings().weight.shape[0]
    special = set(tok.all_special_ids) | set(tok.added_tokens_decoder)
    ours = allowed_tokens(tok, rows, prompts.V2)
    assert ours == [i not in forbidden and i not in special for i in range(rows)]
    assert sum(ours) > 500


def test_target_loss_matches_the_official_loss(tiny) -> None:
    import torch

    target_loss = _function("exps/adv_attack/gcg.py", "target_loss", {"torch": torch})
    gcg = GCG(
        tiny,
        official.official_goal(2, "tutorial")[0],
        official.official_goal(2, "tutorial")[1],
        GCGConfig(template="llama3", num_candidates=16, top_k=16, batch_size=4),
    )
    grad, _ = gcg.gradient(gcg.init_ids)
    cands = gcg.sample_candidates(gcg.init_ids, grad, torch.Generator().manual_seed(0))
    seqs = torch.tensor([gcg.before_ids + row + gcg.after_ids for row in cands.tolist()])
    with torch.no_grad():
        ref = target_loss(gcg.embed(seqs), gcg.model, gcg.tok, gcg.target)
    torch.testing.assert_close(gcg.candidate_losses(cands), ref.float(), rtol=1e-4, atol=1e-5)


# --- the 0-10 pre-screen ------------------------------------------------------------------------------------
def test_harm_prompt_parser_and_threshold(tiny) -> None:
    rel = "exps/adv_attack/filter_harmful.py"
    prompt_format = _eval(_assigned(rel, "prompt_format"))
    full = _assigned(rel, "full_prompt")
    for request in EDGE:
        expected = _eval(full, {"prompt_format": prompt_format, "prompt": request.strip()})  # the script strips
        assert (
            official.llama3_literal(official.HARM_SYSTEM, official.harm_user(request), official.HARM_START) == expected
        )
        req = harm_request(request, 1, prompts.V2, forced=True)
        assert (
            prefill_prompt_ids(tiny, req, "llama3") == tiny.tokenizer(expected, add_special_tokens=False)["input_ids"]
        )
    assert _eval(_kwarg(rel, "generate", "max_new_tokens")) == official.HARM_MAX_NEW_TOKENS
    (search,) = [c for c in _calls(rel, "search")]
    assert _eval(search.args[0]) == official._FIRST_NUMBER.pattern
    compare = next(
        n
        for n in ast.walk(_tree(rel))
        if isinstance(n, ast.Compare) and isinstance(n.left, ast.Name) and n.left.id == "harmfulness_score"
    )
    assert isinstance(compare.ops[0], ast.GtE) and _eval(compare.comparators[0]) == official.HARM_THRESHOLD
    assert prompts.prompt_set(prompts.V2).harm_threshold == official.HARM_THRESHOLD


# --- safe responses ----------------------------------------------------------------------------------------
def test_safe_response_instruction() -> None:
    rel = "exps/exp03_generate_safe_responses.py"
    assert _eval(_assigned(rel, "sys_prompt")) == official.SAFE_SYSTEM
    lam = next(n for n in ast.walk(_tree(rel)) if isinstance(n, ast.Lambda) and n.args.args[0].arg == "row")
    render = _eval(lam)
    for request in EDGE:
        assert official.safe_user(request) == render({"question": request})
        req = safe_response_request(request, prompts.V2)
        assert [(m.role, m.content) for m in req.messages] == [
            ("system", official.SAFE_SYSTEM),
            ("user", render({"question": request})),
        ]
        assert req.config.temperature == 0.0 and req.config.max_new_tokens == official.SAFE_MAX_NEW_TOKENS
    assert _eval(_assigned(rel, "max_new_tokens")) == official.SAFE_MAX_NEW_TOKENS
    assert _eval(_kwarg(rel, "partial", "temperature")) == 0.0
    assert _eval(_assigned(rel, "gpt_name_dict"))["gpt4"] == official.SAFE_MODEL
