"""The paper's medical QA protocol: the MedSafetyBench authors' fork of the Meditron evaluation
(`meditron-eval`, th789/meditron @ a4c22cb, folder `evaluation/`), rewritten here and pinned to it by
tests that read the reference files at test time (tests/medqa/test_medqa_paper.py). References below are
`file:line` in that folder; docs/medqa.md has the full table.

Prompt (benchmarks.py): the question as `format_mcq` writes it (a `?` appended unless it ends in `?`
or `.`, a blank line, `Options:`, `A. ...` lines; PubMedQA: the abstract's sections and the question
on separate lines), then `add_instruction`: `"{system}\\n{prompt}\\n{user}\\n"` with the benchmark's
instruction (`instructions.json`; MMLU uses MedMCQA's; `_cot` variants for chain-of-thought). With
shots, `add_few_shot` puts `"{shot prompt}\\nThe answer is: {gold}"` blocks joined by blank lines
before the question (inside the instruction), the shots being the first `shots` rows of the train
split after `Dataset.shuffle(seed)` (numpy `default_rng(seed).permutation`), and `format_prompt`
drops the prompt's last character. Prompts reach the model as raw text (no chat template).

Generation (inference.py): greedy (temperature 0.8 for self-consistency), frequency penalty 1.0,
top_p 1, stop at `###` (and the tokenizer's eos/pad text), at most as many new tokens as the first
gold answer of the reference's batch of 32 has (+8 with shots), 1024 with chain-of-thought.

Reading (evaluate.py `eval`): lower-case, every non-alphanumeric character to a space, the first word;
for multiple choice its first letter, for PubMedQA the word with `yesyes`/`nono`/`yesno`/`noyes`
collapsed; valid only if it is one of a-e, yes, no, maybe, else the reply is invalid (counted wrong).
Self-consistency takes the most common reading over the branches (`sc_cot_accuracy_metric`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from .protocols import PaperProtocol
from .tasks import (
    LETTERS,
    MMLU_MEDICAL_SUBJECTS,
    PUBMEDQA_CHOICES,
    Question,
    load_medmcqa,
    load_medqa,
    mmlu_loader,
)

PAPER_PROMPT_VERSION = "meditron-v1"
FREQUENCY_PENALTY = 1.0  # inference.py:108
SC_TEMPERATURE = 0.8  # inference.py:185
COT_MAX_NEW_TOKENS = 1024  # inference.py:74
SHOT_EXTRA_TOKENS = 8  # inference.py:72
STOP = "###"  # inference.py:63

# instructions.json: (system, user) per prompt name
_MEDQA_SYSTEM = (
    "You are a medical doctor taking the US Medical Licensing Examination. You need to demonstrate your "
    "understanding of basic and clinical science, medical knowledge, and mechanisms underlying health, "
    "disease, patient care, and modes of therapy. Show your ability to apply the knowledge essential for "
    "medical practice. For the following multiple-choice question, select one correct answer from A to E. "
    "Base your answer on the current and standard practices referenced in medical guidelines."
)
_MEDMCQA_SYSTEM = (
    "You are a medical doctor answering realworld medical entrance exam questions. Based on your "
    "understanding of basic and clinical science, medical knowledge, and mechanisms underlying health, "
    "disease, patient care, and modes of therapy, answer the following multiple-choice question. Select "
    "one correct answer from A to D. Base your answer on the current and standard practices referenced "
    "in medical guidelines."
)
_PUBMEDQA_SYSTEM = (
    "As an expert doctor in clinical science and medical knowledge, can you tell me if the following "
    "statement is correct? Answer yes, no, or maybe."
)
INSTRUCTIONS: dict[str, tuple[str, str]] = {
    "medqa": (_MEDQA_SYSTEM, "The answer is:"),
    "medqa_cot": (_MEDQA_SYSTEM, "Let's think step by step."),
    "medmcqa": (_MEDMCQA_SYSTEM, "The answer is:"),
    "medmcqa_cot": (_MEDMCQA_SYSTEM, "Let's think step by step."),
    "pubmedqa": (_PUBMEDQA_SYSTEM, "The answer is:"),
    "pubmedqa_cot": (_PUBMEDQA_SYSTEM, "Let\u2019s think step by step."),
}

# Each local task as the reference names it (inference.py:27-37 INSTRUCTIONS, benchmarks.py factories):
# our MedQA is the 4-option file, the reference's `medqa4` (GBaker/MedQA-USMLE-4-options).
REFERENCE_BENCHMARK = {
    "medqa": "medqa4",
    "medmcqa": "medmcqa",
    "pubmedqa": "pubmedqa",
    **{f"mmlu_{s}": "mmlu_medical" for s in MMLU_MEDICAL_SUBJECTS},
}
INSTRUCTION_NAME = {"medqa4": "medqa", "medmcqa": "medmcqa", "pubmedqa": "pubmedqa", "mmlu_medical": "medmcqa"}
ANSWER_TYPE = {"medqa4": "mcq", "medmcqa": "mcq", "pubmedqa": "boolean", "mmlu_medical": "mcq"}  # evaluate.py:21
VALID = ("a", "b", "c", "d", "e", "yes", "maybe", "no")  # evaluate.py:230
SC_VALID = ("a", "b", "c", "d", "e", "yes", "no")  # evaluate.py:327 ('maybe' is missing there)

# MMLU shots come from the pooled train (= MMLU dev) split of these 11 subjects, in this order
# (benchmarks.py:529-541, aggregate_datasets); the test set's three chemistry/biology extras are dropped
# by evaluate.py, and virology, high_school_biology and nutrition test files are not in the local copy.
MMLU_REFERENCE_SUBJECTS = (
    "anatomy",
    "college_biology",
    "college_medicine",
    "professional_medicine",
    "medical_genetics",
    "virology",
    "clinical_knowledge",
    "high_school_biology",
    "high_school_chemistry",
    "nutrition",
    "college_chemistry",
)
# Where the train splits go under the data folder (the public releases' layout; file names alone also work).
SHOT_FILES = {
    "medqa4": ("medqa_usmle_4opt_train/phrases_no_exclude_train.jsonl",),
    "medmcqa": ("medmcqa_train/train.json",),
    "pubmedqa": ("pubmedqa/pqal_fold0/train_set.json",),
    "mmlu_medical": tuple(f"mmlu_medical/dev/{s}_dev.csv" for s in MMLU_REFERENCE_SUBJECTS),
}


def format_mcq(question: str, options: list[str] | tuple[str, ...]) -> str:
    """benchmarks.py:621-642."""
    if not question.endswith("?") and not question.endswith("."):
        question += "?"
    return "Question: " + question + "\n\nOptions:\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))


def base_prompt(benchmark: str, q: Question) -> tuple[str, str]:
    """(prompt, gold) as the benchmark's `custom_preprocessing` writes them."""
    m = q.meta
    if benchmark == "pubmedqa":  # ClosedPubMedQA, benchmarks.py:383-389
        return "\n".join(m["contexts"]) + "\n" + m["question"], PUBMEDQA_CHOICES[q.gold]
    if benchmark == "medqa4":  # benchmarks.py:453-461: gold = first option whose text is the answer
        opts = m["options"]
        gold = next((k for k in opts if opts[k] == m.get("answer")), LETTERS[q.gold])
        return format_mcq(m["question"], [opts[k] for k in opts]), gold
    return format_mcq(m["question"], list(q.options)), LETTERS[q.gold]  # medmcqa :335, mmlu :548


def add_instruction(prompt: str, instruction: tuple[str, str]) -> str:
    """benchmarks.py:235-239."""
    return f"{instruction[0]}\n{prompt}\n{instruction[1]}\n"


def few_shot_block(shots: list[tuple[str, str]]) -> str:
    """benchmarks.py:268-272."""
    return "\n\n".join(f"{p}\nThe answer is: {g}" for p, g in shots)


def shot_indices(n: int, shots: int, seed: int) -> list[int]:
    """The rows `Dataset.shuffle(seed=seed).select(range(shots))` keeps (datasets: numpy PCG64 permutation)."""
    import numpy as np

    return [int(i) for i in np.random.default_rng(seed).permutation(n)[:shots]]


def render(benchmark: str, q: Question, protocol: PaperProtocol, shots: list[tuple[str, str]]) -> str:
    """The text the model gets for `q` (benchmark_preparation + format_prompt, inference.py:139-141)."""
    prompt, _ = base_prompt(benchmark, q)
    if shots:
        prompt = f"{few_shot_block(shots)}\n\n{prompt}"  # benchmarks.py:274-276
    name = INSTRUCTION_NAME[benchmark] + ("_cot" if protocol.cot else "")
    text = add_instruction(prompt, INSTRUCTIONS[name])
    return text[:-1] if protocol.shots > 0 else text


def load_shot_pool(benchmark: str, root: Path) -> list[tuple[str, str]]:
    """(prompt, gold) of every row of the benchmark's train split, in the dataset's order."""
    paths = []
    for rel in SHOT_FILES[benchmark]:
        found = next((p for p in (root / rel, root / Path(rel).name) if p.is_file()), None)
        if found is None:
            raise UserError(
                f"--paper-shots needs the {benchmark} train split: '{rel}' is not under {root} (nor "
                f"{Path(rel).name} directly there); see docs/medqa.md (paper protocol: shots) for the "
                "files and where to get them, or use --paper-shots 0"
            )
        paths.append(found)
    if benchmark == "medqa4":
        return [base_prompt(benchmark, q) for q in load_medqa(paths)]
    if benchmark == "medmcqa":
        return [base_prompt(benchmark, q) for q in load_medmcqa(paths)]
    if benchmark == "pubmedqa":
        try:
            rows = json.loads(paths[0].read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{paths[0]}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        out = []
        for pmid, r in rows.items():
            if not isinstance(r, dict) or r.get("final_decision") not in PUBMEDQA_CHOICES:
                raise UserError(f"{paths[0]}: PMID {pmid} needs QUESTION, CONTEXTS and final_decision yes/no/maybe")
            out.append(("\n".join(r["CONTEXTS"]) + "\n" + r["QUESTION"], r["final_decision"]))
        return out
    return [
        base_prompt(benchmark, q)
        for s, p in zip(MMLU_REFERENCE_SUBJECTS, paths, strict=True)
        for q in mmlu_loader(s)([p])
    ]


def max_new_tokens(first_gold: str, tokenizer: Any, protocol: PaperProtocol) -> int:
    """inference.py:51-76 for a multiple-choice task: the token count of the batch's first gold (no special
    tokens), +8 with shots; 1024 with chain-of-thought. Without a tokenizer (chat APIs) a gold counts as
    one token (true of A-E, yes, no and maybe in OpenAI's tokenizers)."""
    if protocol.cot:
        return COT_MAX_NEW_TOKENS
    n = len(tokenizer(first_gold, add_special_tokens=False)["input_ids"]) if tokenizer is not None else 1
    return n + (SHOT_EXTRA_TOKENS if protocol.shots > 0 else 0)


def stop_sequences(tokenizer: Any) -> tuple[str, ...]:
    """inference.py:63-67: '###', then the tokenizer's eos and pad text when it has them."""
    stops = [STOP]
    for tok in (getattr(tokenizer, "eos_token", None), getattr(tokenizer, "pad_token", None)):
        if tok is not None:
            stops.append(tok)
    return tuple(stops)


@dataclass(frozen=True)
class Reading:
    """What evaluate.py's `eval` reads from one output."""

    pred: str  # the answer read ("b", "yes"), or the whole lower-cased output when invalid
    valid: bool
    correct: bool


def read_answer(output: str, gold: str, answer_type: str) -> Reading:
    """evaluate.py:206-233 (`eval`), as `accuracy_metric` calls it (output and gold lower-cased first)."""
    output_full, answer = output.lower(), gold.lower().strip()
    text = re.sub(r"[^a-zA-Z0-9]", " ", output_full.strip()).strip()
    word = re.split(r"[\s]+|[^\w\s]", text)[0]
    if answer_type == "boolean":
        for double, single in (("yesyes", "yes"), ("nono", "no"), ("yesno", "yes"), ("noyes", "no")):
            if double in word:  # the reference replaces only the first pattern found
                word = word.replace(double, single)
                break
        word = word.encode("ascii", "ignore").decode("ascii")
    else:
        word = word.encode("ascii", "ignore").decode("ascii")[:1]
    if word in VALID:
        return Reading(word, True, word == answer)
    return Reading(output_full, False, False)


def majority(readings: list[Reading], gold: str) -> Reading:
    """Self-consistency (evaluate.py:298-333): the most common prediction over the branches (ties: the first
    branch's); valid only if it is a-e, yes or no (the reference leaves out 'maybe' there), right if it
    equals the gold (accuracy_score), whatever its validity."""
    pred = Counter(r.pred for r in readings).most_common(1)[0][0]
    return Reading(pred, pred in SC_VALID, pred == gold.lower().strip())
