"""medqa.paper and medqa.protocols: the paper protocol against the meditron-eval fork itself. The reference
files (../shared/reference/meditron-eval/evaluation) are read at test time: constants by `ast`/json, and
their functions (format_mcq, the benchmarks' custom_preprocessing, Benchmark.add_few_shot/add_instruction
on real `datasets` objects, format_prompt, tokenizer_param, evaluate.py's eval and metrics) compiled from
their source as oracles. Skips with a reason when the reference folder is absent. Then an end-to-end run
on the tiny model, and McNemar between the tiny model and a LoRA adapter trained here under the protocol."""

from __future__ import annotations

import ast
import json
import re
import types
from collections import Counter
from pathlib import Path

import pytest

from helpers.paths import SHARED
from medsafetybench.errors import UserError
from medsafetybench.medqa import paper
from medsafetybench.medqa.protocols import (
    PAPER_BATCH_SIZE,
    PAPER_SEEDS,
    PAPER_SINGLE_SEED,
    PaperProtocol,
    make_protocol,
    protocol_from_row,
)
from medsafetybench.medqa.tasks import load_task, resolve_tasks

ROOT = SHARED
REF = ROOT / "reference" / "meditron-eval" / "evaluation"
DATA = ROOT / "data" / "medqa"
needs_ref = pytest.mark.skipif(not REF.is_dir(), reason=f"{REF} (the meditron-eval reference) is absent")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} (the shared medical QA data) is absent")


# --- the reference, read at test time ------------------------------------------------------------------


def _tree(name: str) -> ast.Module:
    return ast.parse((REF / name).read_text(encoding="utf-8"))


def _compile(name: str, wanted: dict[str, str], namespace: dict) -> dict:
    """Compile functions of a reference file into `namespace`: wanted maps 'Class.method' or 'function'
    to the name to bind (decorators dropped)."""
    nodes = []
    for node in _tree(name).body:
        inner = (
            [(f"{node.name}.{n.name}", n) for n in node.body if isinstance(n, ast.FunctionDef)]
            if isinstance(node, ast.ClassDef)
            else [(getattr(node, "name", ""), node)]
        )
        for qual, fn in inner:
            if qual in wanted and isinstance(fn, ast.FunctionDef):
                fn.name, fn.decorator_list = wanted[qual], []
                nodes.append(fn)
    assert len(nodes) == len(wanted), f"not all of {sorted(wanted)} found in {name}"
    exec(compile(ast.Module(nodes, []), str(REF / name), "exec"), namespace)  # noqa: S102 - the reference, as an oracle
    return namespace


def _literal(name: str, target: str):
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == target for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{target} not in {name}")


def _reference_prompts(
    bench: str,
    raw_rows: list[dict],
    train_rows: list[dict],
    shots: int,
    seed: int,
    cot: bool,
    checkpoint: str = "llama2-7b",
) -> list[str]:
    """benchmark_preparation + format_prompt of inference.py, on `datasets` objects, by the reference's code."""
    datasets = pytest.importorskip("datasets", reason="the `datasets` package (lm-eval's dependency) is absent")
    import numpy as np

    ns = _compile(
        "benchmarks.py",
        {
            "format_mcq": "format_mcq",
            "Benchmark.add_instruction": "add_instruction",
            "Benchmark.add_few_shot": "add_few_shot",
            {"medqa4": "MedQA4", "medmcqa": "MedMCQA", "pubmedqa": "ClosedPubMedQA", "mmlu_medical": "MMLU"}[bench]
            + ".custom_preprocessing": "pre",
        },
        {"os": __import__("os"), "random": __import__("random"), "ROOT_DIR": str(REF.parent)},
    )
    fmt = _compile("inference.py", {"format_prompt": "format_prompt"}, {"np": np})["format_prompt"]
    obj = types.SimpleNamespace(
        name=bench,
        test_data=datasets.Dataset.from_list(raw_rows).map(ns["pre"]),
        train_data=datasets.Dataset.from_list(train_rows).map(ns["pre"]) if train_rows else None,
    )
    instructions = json.loads((REF / "instructions.json").read_text(encoding="utf-8"))
    name = _literal("inference.py", "INSTRUCTIONS")[bench]["instructions"] + ("_cot" if cot else "")
    if shots:
        ns["add_few_shot"](obj, shots=shots, seed=seed, load_cot=False)
    ns["add_instruction"](obj, instruction=instructions[name], partition="test")
    args = types.SimpleNamespace(shots=shots, checkpoint_name=checkpoint)
    return [fmt(p, args) for p in obj.test_data["prompt"]]


def _hf_rows(task: str, limit: int) -> list[dict]:
    """The local rows in the Hugging Face schema the reference reads (GBaker MedQA, medmcqa cop 0-3, bigbio
    PubMedQA source, lukaemon MMLU)."""
    qs = load_task(resolve_tasks([task])[0], DATA, limit)
    if task == "medqa":
        return [
            {
                "question": q.meta["question"],
                "options": q.meta["options"],
                "answer": q.meta["answer"],
                "answer_idx": "ABCD"[q.gold],
            }
            for q in qs
        ]
    if task == "medmcqa":
        return [
            {
                "question": q.meta["question"],
                "opa": q.options[0],
                "opb": q.options[1],
                "opc": q.options[2],
                "opd": q.options[3],
                "cop": q.gold,
                "exp": q.meta["exp"],
            }
            for q in qs
        ]
    if task == "pubmedqa":
        return [
            {
                "QUESTION": q.meta["question"],
                "CONTEXTS": q.meta["contexts"],
                "final_decision": q.choices[q.gold],
                "LONG_ANSWER": q.meta["long_answer"],
            }
            for q in qs
        ]
    return [
        {
            "input": q.meta["question"],
            "A": q.options[0],
            "B": q.options[1],
            "C": q.options[2],
            "D": q.options[3],
            "target": "ABCD"[q.gold],
            "subset": task[5:],
        }
        for q in qs
    ]


# --- strings and settings -----------------------------------------------------------------------------


@needs_ref
def test_instructions_seeds_and_generation_settings_are_the_references() -> None:
    instructions = json.loads((REF / "instructions.json").read_text(encoding="utf-8"))
    for name, (system, user) in paper.INSTRUCTIONS.items():
        assert (instructions[name]["system"], instructions[name]["user"]) == (system, user), name
    curated = _literal("inference.py", "INSTRUCTIONS")
    for bench, name in paper.INSTRUCTION_NAME.items():
        assert curated[bench]["instructions"] == name and curated[bench]["task"] == "mcq"
    assert _literal("evaluate.py", "benchmark_output_type").items() >= paper.ANSWER_TYPE.items()
    tree = _tree("inference.py")
    seeds = [
        ast.literal_eval(n.iter)
        for n in ast.walk(tree)
        if isinstance(n, ast.For) and getattr(n.target, "id", None) == "seed" and isinstance(n.iter, ast.List)
    ]
    assert seeds == [list(PAPER_SEEDS)]
    [call] = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "SamplingParams"
    ]
    kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if isinstance(k.value, ast.Constant | ast.UnaryOp)}
    assert kw == {
        "best_of": 1,
        "presence_penalty": 0.0,
        "frequency_penalty": paper.FREQUENCY_PENALTY,
        "top_k": -1,
        "top_p": 1.0,
        "use_beam_search": False,
        "logprobs": 5,
    }
    [temp] = [
        n for n in ast.walk(tree) if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "temperature"
    ]
    assert (temp.value.body.value, temp.value.orelse.value) == (paper.SC_TEMPERATURE, 0.0)
    defaults = {
        ast.literal_eval(n.args[0]): {k.arg: ast.literal_eval(k.value) for k in n.keywords if k.arg == "default"}
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "add_argument"
    }
    assert defaults["--sc_branch"]["default"] == PaperProtocol().sc_branches
    prep = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "benchmark_preparation")
    assert prep.args.defaults[-1].value == PAPER_SINGLE_SEED
    script = (REF / "inference_pipeline.sh").read_text(encoding="utf-8")
    assert re.search(r"^BATCH_SIZE=(\d+)", script, re.M).group(1) == str(PAPER_BATCH_SIZE)
    assert re.search(r"^SHOTS=(\d+)", script, re.M).group(1) == str(PaperProtocol().shots)
    mmlu = next(n for n in ast.walk(_tree("benchmarks.py")) if isinstance(n, ast.ClassDef) and n.name == "MMLU")
    [subsets] = [
        ast.literal_eval(n.value)
        for n in ast.walk(mmlu)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "attr", "") == "subsets_medical"
    ]
    assert tuple(subsets) == paper.MMLU_REFERENCE_SUBJECTS


@needs_ref
def test_max_new_tokens_and_stops_are_tokenizer_param(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ref = _compile("inference.py", {"tokenizer_param": "tokenizer_param"}, {})["tokenizer_param"]
    for golds in (["B", "A"], ["maybe", "yes"], ["yes"], ["no", "maybe"]):
        for shots in (0, 3):
            for cot in (False, True):
                n, stops = ref(tok, golds, shots=shots, cot=cot, task_type="mcq")
                proto = PaperProtocol(shots=shots if not cot else 0, cot=cot, multi_seed=False)
                if cot and shots:
                    continue  # refused (see test_protocol_settings_and_refusals)
                assert paper.max_new_tokens(golds[0], tok, proto) == n, (golds, shots, cot)
                assert list(paper.stop_sequences(tok)) == stops


@needs_ref
@needs_data
@pytest.mark.parametrize(
    "task,bench",
    [("medqa", "medqa4"), ("medmcqa", "medmcqa"), ("pubmedqa", "pubmedqa"), ("mmlu_anatomy", "mmlu_medical")],
)
@pytest.mark.parametrize("shots,seed,cot", [(0, 0, False), (0, 0, True), (3, 7825, False), (2, 1234, False)])
def test_prompts_are_the_references(task: str, bench: str, shots: int, seed: int, cot: bool) -> None:
    rows = _hf_rows(task, 40)
    test_rows, train_rows = rows[:6], rows[6:]  # the local copy has no train split: test rows stand in for one
    want = _reference_prompts(bench, test_rows, train_rows, shots, seed, cot)
    qs = load_task(resolve_tasks([task])[0], DATA, 40)
    pool = [paper.base_prompt(bench, q) for q in qs[6:]]
    chosen = [pool[i] for i in paper.shot_indices(len(pool), shots, seed)] if shots else []
    proto = PaperProtocol(shots=shots, cot=cot, seeds=(seed,) if shots else None)
    got = [paper.render(bench, q, proto, chosen) for q in qs[:6]]
    assert got == want
    if shots:  # the shuffle is datasets' own
        datasets = pytest.importorskip("datasets")
        ds = datasets.Dataset.from_list([{"i": i} for i in range(len(pool))]).shuffle(seed=seed).select(range(shots))
        assert paper.shot_indices(len(pool), shots, seed) == ds["i"]


MALFORMED = [
    "B",
    " b",
    "B.",
    "(C) because",
    "**D**",
    "Answer: C",
    "The answer is B",
    "because of the cough",
    "e",
    "E) none",
    "",
    "   ",
    "\n\nA",
    "Á",
    "éa",
    "1",
    "### B",
    "A or C",
    "yes",
    "Yes.",
    "no, because",
    "maybe",
    "yesyes",
    "nono no",
    "noyes",
    "yesno",
    "Yesmaybe",
    "nope",
    "unclear",
    "yes\n\nno",
    "\u2013 no",
    "ye s",
    "Maybe.",
    "N/A",
    "I cannot answer that.",
]


@needs_ref
def test_answer_reading_is_evaluate_eval_including_malformed() -> None:
    ns = _compile(
        "evaluate.py",
        {
            "eval": "ref_eval",
            "clean_mcq_answer": "clean_mcq_answer",
            "clean_double_answer": "clean_double_answer",
            "clean_answer": "clean_answer",
        },
        {"re": re},
    )
    for answer_type, golds in (("mcq", ["A", "B", "C", "D"]), ("boolean", ["yes", "no", "maybe"])):
        for out in MALFORMED:
            for gold in golds:
                want = ns["ref_eval"](out.lower(), gold.lower(), shot=True, cot=False, answer_type=answer_type)
                got = paper.read_answer(out, gold, answer_type)
                assert (got.correct if got.valid else 2, got.pred, gold.lower()) == want, (answer_type, out, gold)
    # the reference's quirks, pinned: the first letter of the first word is the answer
    assert paper.read_answer("Answer: C", "A", "mcq").correct  # 'answer' -> 'a'
    assert not paper.read_answer("The answer is B", "B", "mcq").valid  # 'the' -> 't'


@needs_ref
def test_accuracy_and_self_consistency_are_the_references_metrics() -> None:
    pytest.importorskip("sklearn", reason="scikit-learn (the reference metrics' dependency) is absent")
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    ns = _compile(
        "evaluate.py",
        {
            "eval": "eval",
            "clean_mcq_answer": "clean_mcq_answer",
            "clean_answer": "clean_answer",
            "clean_double_answer": "clean_double_answer",
            "accuracy_metric": "accuracy_metric",
            "sc_cot_accuracy_metric": "sc_cot_accuracy_metric",
        },
        {
            "re": re,
            "Counter": Counter,
            "accuracy_score": accuracy_score,
            "precision_recall_fscore_support": precision_recall_fscore_support,
        },
    )
    data = [{"prompt": f"q{i}", "gold": "ABCD"[i % 4], "output": out} for i, out in enumerate(MALFORMED)]
    m = ns["accuracy_metric"](data, shots=3, cot=False, answer_type="mcq")
    reads = [paper.read_answer(r["output"], r["gold"], "mcq") for r in data]
    assert (m["correct"], m["unable_to_find_answer"], m["total"]) == (
        sum(r.correct for r in reads),
        sum(not r.valid for r in reads),
        len(data),
    )
    # self-consistency: five branches per question, majority over readings (ties: first branch's)
    branches = [
        ["A", "b", "B", "C", "B"],
        ["yes please", "C", "C", "D", "D"],
        ["x", "y", "z", "A", "A"],
        ["D", "D", "A", "A", "C"],
        ["", "", "B", "B", "A"],
    ]
    golds = ["B", "C", "A", "A", "B"]
    rows = [
        {"prompt": f"q{i}", "gold": g, "output": o}
        for i, (g, bs) in enumerate(zip(golds, branches, strict=True))
        for o in bs
    ]
    m = ns["sc_cot_accuracy_metric"](rows, shots=0, cot=True, answer_type="mcq")
    votes = [
        paper.majority([paper.read_answer(o, g, "mcq") for o in bs], g) for g, bs in zip(golds, branches, strict=True)
    ]
    assert (m["correct"], m["unable_to_find_answer"]) == (
        sum(v.correct for v in votes),
        sum(not v.valid for v in votes),
    )
    assert m["accuracy"] == pytest.approx(sum(v.correct for v in votes) / len(votes))
    # 'maybe' is missing from the reference's self-consistency answer set: right, yet counted unreadable
    maybe = paper.majority([paper.read_answer("maybe", "maybe", "boolean")] * 3, "maybe")
    assert maybe.correct and not maybe.valid


def test_protocol_settings_and_refusals() -> None:
    assert make_protocol("paper").replicates() == [("single", None)]
    multi = make_protocol({"name": "paper", "shots": 3})
    assert [v for _, v in multi.replicates()] == list(PAPER_SEEDS) and multi.label == "paper (3-shot x 10 seeds)"
    single = make_protocol("paper", shots=3, multi_seed=False)
    assert single.replicates() == [("seed", PAPER_SINGLE_SEED)] and single.label == "paper (3-shot)"
    sc_shots = make_protocol("paper", shots=2, sc=True, multi_seed=False)  # branches, shots from seed 1234
    assert [k for k, _ in sc_shots.replicates()] == ["branch"] * 10
    assert sc_shots.seed_for(sc_shots.replicates()[0]) == PAPER_SINGLE_SEED
    sc = make_protocol("paper", cot=True, sc=True)
    assert [k for k, _ in sc.replicates()] == ["branch"] * 10 and sc.label == "paper (0-shot, CoT, SC x 10)"
    assert multi.settings() != single.settings() != make_protocol("paper").settings()
    assert make_protocol("harness", add_bos=False).label == "harness, no BOS"
    for p in (multi, single, sc, sc_shots, make_protocol("paper"), make_protocol("paper", shots=1, seeds=[3, 4])):
        back = protocol_from_row("paper", json.loads(json.dumps(p.settings())))  # what a stored row says
        assert (back.settings(), back.replicates(), back.label) == (p.settings(), p.replicates(), p.label)
    for bad in (
        {"name": "paper", "shots": 2, "cot": True},
        {"name": "paper", "shots": 2, "sc": True},
        {"name": "nope"},
        {"name": "harness", "shots": 3},
        {"name": "paper", "shots": -1},
    ):
        with pytest.raises(UserError):
            make_protocol(bad)


# --- end to end on the tiny model ---------------------------------------------------------------------

KINDS = {"colour": ("red", 0), "animal": ("cat", 1), "number": ("nine", 2), "city": ("oslo", 3)}


def _synthetic_csv(path: Path, n: int, offset: int = 0) -> None:
    """MMLU-format questions whose answer letter follows from the topic word (colour -> A, animal -> B, ...)."""
    lines = []
    for i in range(n):
        kind = list(KINDS)[(i + offset) % 4]
        opts = [KINDS[k][0] for k in KINDS]
        lines.append(f"Which {kind} is it?,{','.join(opts)},{'ABCD'[KINDS[kind][1]]}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("paper-data")
    _synthetic_csv(root / "mmlu_medical" / "anatomy_test.csv", 24)
    for s in paper.MMLU_REFERENCE_SUBJECTS:  # the pooled MMLU dev split the shots come from
        _synthetic_csv(root / "mmlu_medical" / "dev" / f"{s}_dev.csv", 5, offset=len(s))
    return root


def test_end_to_end_on_the_tiny_model(tiny_model_dir: Path, synthetic_data: Path, tmp_path: Path) -> None:
    from medsafetybench.medqa import evaluate_medqa, export_records, medqa_runs
    from medsafetybench.store import Store

    spec = f"hf:{tiny_model_dir}"
    with Store(tmp_path / "s.db") as store:
        zero = evaluate_medqa(store, spec, ["mmlu_anatomy"], synthetic_data, 6, 4, protocol="paper")
        assert zero.computed == 6 and zero.label == "paper (0-shot)" and zero.tasks[0].n_scored == 6
        assert evaluate_medqa(store, spec, ["mmlu_anatomy"], synthetic_data, 6, 4, protocol="paper").computed == 0
        shots = evaluate_medqa(
            store,
            spec,
            ["mmlu_anatomy"],
            synthetic_data,
            6,
            4,
            protocol={"name": "paper", "shots": 2, "seeds": [7825, 1166, 5892]},
        )
        assert shots.computed == 18  # 6 questions x 3 seeds, nothing shared with the 0-shot rows
        t = shots.tasks[0]
        assert set(t.replicates) == {"seed 7825", "seed 1166", "seed 5892"}
        assert t.acc.value == pytest.approx(sum(t.replicates.values()) / 3)  # the mean over seeds
        rows = store.conn.execute("SELECT protocol, settings, replicate, prompt_version FROM medqa_scores").fetchall()
        assert {r[0] for r in rows} == {"paper"} and {r[3] for r in rows} == {paper.PAPER_PROMPT_VERSION}
        assert sorted({r[2] for r in rows if r[2] is not None}) == [1166, 5892, 7825]
        assert len(medqa_runs(store)) == 2
        n = export_records(shots, tmp_path / "e.jsonl")
        recs = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
        assert n == len(recs) == 18 and recs[0]["protocol"] == "paper" and recs[0]["replicate"] == 7825
        assert recs[0]["settings"]["seeds"] == [7825, 1166, 5892]
        only_test = tmp_path / "only-test"
        _synthetic_csv(only_test / "mmlu_medical" / "anatomy_test.csv", 4)
        with pytest.raises(UserError, match="train split"):  # no MMLU dev files there
            evaluate_medqa(store, spec, ["mmlu_anatomy"], only_test, 2, protocol={"name": "paper", "shots": 1})


def _train_adapter(model_dir: Path, data: Path, out: Path) -> Path:
    """A LoRA adapter (peft) trained to answer the synthetic questions with the right letter right after the
    paper protocol's 0-shot prompt."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model_dir),
        LoraConfig(
            r=16,
            lora_alpha=32,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            modules_to_save=["lm_head"],
            task_type="CAUSAL_LM",
        ),
    )
    _synthetic_csv(data / "train.csv", 32, offset=1)
    qs = resolve_tasks(["mmlu_anatomy"])[0].loader([data / "train.csv"])
    proto = PaperProtocol()
    examples = []
    for q in qs:
        ids = tok(paper.render("mmlu_medical", q, proto, []))["input_ids"]
        target = tok("ABCD"[q.gold], add_special_tokens=False)["input_ids"]
        examples.append((ids, target))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for step in range(80):
        loss = 0.0
        for ids, target in (examples[(step * 8 + k) % len(examples)] for k in range(8)):
            x = torch.tensor([ids + target])
            logits = model(input_ids=x[:, :-1]).logits[0, -len(target) :]
            loss = loss + torch.nn.functional.cross_entropy(logits, torch.tensor(target))
        opt.zero_grad()
        (loss / 8).backward()
        opt.step()
    model.save_pretrained(out)
    return out


def test_mcnemar_base_vs_adapter_under_the_paper_protocol(
    tiny_model_dir: Path, synthetic_data: Path, tmp_path: Path
) -> None:
    pytest.importorskip("peft")
    from medsafetybench.medqa import compare_medqa, evaluate_medqa
    from medsafetybench.store import Store

    adapter = _train_adapter(tiny_model_dir, tmp_path, tmp_path / "adapter")
    base, tuned = f"hf:{tiny_model_dir}", f"hf:{tiny_model_dir}+{adapter}"
    with Store(tmp_path / "s.db") as store:
        c = compare_medqa(store, base, tuned, ["mmlu_anatomy"], synthetic_data, 20, 8, protocol="paper")
        anatomy = c.tasks[0]
        assert c.a.label == c.b.label == "paper (0-shot)" and anatomy.n == 20
        assert anatomy.acc_b >= anatomy.acc_a + 0.5 and anatomy.b_only >= 10
        assert anatomy.p_value < 0.01
        # a harness result of the same models is another measure: comparing across protocols is refused
        h = evaluate_medqa(store, base, ["mmlu_anatomy"], synthetic_data, 20, 8)
        from medsafetybench.medqa import compare_results

        with pytest.raises(UserError, match="different protocols"):
            compare_results(h, c.b)
