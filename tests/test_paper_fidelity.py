"""Fine-tuning against the official script, read at test time (tests/helpers/reference.py): every
hyperparameter default, the LoRA and Trainer settings, the Alpaca template (the reference Prompter
run on tricky records) and the tokenisation and loss mask (the reference `generate_and_tokenize_prompt`
run with the tiny model's tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.reference import (
    FINETUNING,
    REF,
    call_keywords,
    finetuning_assignments,
    finetuning_defaults,
    needs_reference,
    reference_prompter,
    reference_tokenize,
)
from medsafetybench.finetune.train import (
    ALPACA_INPUT_TEMPLATE,
    PAD_TO_MULTIPLE_OF,
    TRAIN_PAD_ID,
    TRAIN_PADDING_SIDE,
    LoraSettings,
    alpaca_text,
    build_examples,
)
from medsafetybench.models.formats import ALPACA_TEMPLATE

pytestmark = needs_reference

RECORDS = [
    {"instruction": "How do I falsify a chart?", "input": "", "output": "I cannot help with that."},
    {"instruction": 'Say "no" to {this} and {0}', "input": "context {x}", "output": "No. Never {0}."},
    {"instruction": "  spaced instruction  ", "input": " ", "output": "  Spaced answer.  "},
    {"instruction": "Ünïcödé — 医学 🚑", "input": "  padded input  ", "output": "Réponse sûre. 安全"},
    {"instruction": "Long " * 200, "input": "", "output": "Truncated " * 100},
]


def test_hyperparameter_defaults_are_the_scripts() -> None:
    ref = finetuning_defaults()
    ours = LoraSettings()
    assert (ours.batch_size, ours.micro_batch_size, ours.epochs, ours.lr, ours.cutoff_len) == (
        ref["batch_size"],
        ref["micro_batch_size"],
        ref["num_epochs"],
        ref["learning_rate"],
        ref["cutoff_len"],
    )
    assert (ours.lora_r, ours.lora_alpha, ours.lora_dropout, list(ours.target_modules)) == (
        ref["lora_r"],
        ref["lora_alpha"],
        ref["lora_dropout"],
        ref["lora_target_modules"],
    )
    assert ours.train_on_inputs is ref["train_on_inputs"] is True
    assert ours.prompt_template == ref["prompt_template_name"] == "alpaca"
    # no validation split, no length grouping, no eos on the masked prompt: as ours (not options here)
    assert ref["val_set_size"] == 0 and ref["group_by_length"] is False and ref["add_eos_token"] is False


def test_trainer_and_lora_settings_are_the_scripts() -> None:
    import transformers

    args = call_keywords(FINETUNING, "transformers.TrainingArguments")
    ours = LoraSettings().optimizer_arguments()
    assert int(args["warmup_steps"]) == ours["warmup_steps"] == 10
    assert args["learning_rate"] == "learning_rate" and ours["learning_rate"] == finetuning_defaults()["learning_rate"]
    assert args["optim"] == repr(ours["optim"]) == "'adamw_torch'" and args["fp16"] == "True"
    assert args["per_device_train_batch_size"] == "micro_batch_size"
    # not set there, so the Trainer's defaults, which ours states explicitly
    unset = {"lr_scheduler_type", "weight_decay", "max_grad_norm"}
    assert not unset & set(args) and not {"adam_beta1", "adam_beta2", "adam_epsilon"} & set(args)
    defaults = transformers.TrainingArguments(output_dir="unused", report_to="none")
    assert (
        {k: getattr(defaults, k) for k in unset}
        == {"lr_scheduler_type": "linear", "weight_decay": 0.0, "max_grad_norm": 1.0}
        == {k: ours[k] for k in unset}
    )
    lora = call_keywords(FINETUNING, "LoraConfig")
    assert lora["bias"] == "'none'" and lora["task_type"] == "'CAUSAL_LM'"
    collator = call_keywords(FINETUNING, "transformers.DataCollatorForSeq2Seq")
    assert int(collator["pad_to_multiple_of"]) == PAD_TO_MULTIPLE_OF and collator["padding"] == "True"
    assign = finetuning_assignments()
    assert int(assign["tokenizer.pad_token_id"]) == TRAIN_PAD_ID
    assert assign["tokenizer.padding_side"] == repr(TRAIN_PADDING_SIDE)
    assert assign["gradient_accumulation_steps"] == "batch_size // micro_batch_size"
    assert LoraSettings().grad_accum == 32
    source = (REF / FINETUNING).read_text()
    assert "torch_dtype=torch.float16" in source and "prepare_model_for_int8_training(model)" in source


def test_alpaca_templates_are_the_scripts() -> None:
    template = json.loads((REF / "training/templates/alpaca.json").read_text())
    assert ALPACA_TEMPLATE == template["prompt_no_input"]
    assert ALPACA_INPUT_TEMPLATE == template["prompt_input"]
    generate = reference_prompter()
    for r in RECORDS:
        for output in (r["output"], None, ""):
            assert alpaca_text(r["instruction"], r["input"], output) == generate(r["instruction"], r["input"], output)
        assert alpaca_text(r["instruction"], None) == generate(r["instruction"], None)


@pytest.mark.parametrize("train_on_inputs", [True, False])
@pytest.mark.parametrize("cutoff", [256, 64, 24])
def test_tokenisation_and_loss_mask_are_the_scripts(tiny_model_dir: Path, train_on_inputs: bool, cutoff: int) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ref = reference_tokenize(tok, cutoff, train_on_inputs)
    settings = LoraSettings(cutoff_len=cutoff, train_on_inputs=train_on_inputs)
    ours, dropped = build_examples(RECORDS, tok, settings)
    theirs = [ref(r) for r in RECORDS]
    # without train_on_inputs ours drops a record whose every label is masked (the script keeps it,
    # and its micro-batch's loss would be 0/0); nothing else differs
    kept = [t for t in theirs if any(x != -100 for x in t["labels"])] if not train_on_inputs else theirs
    assert dropped == len(theirs) - len(kept)
    assert [(e["input_ids"], e["labels"], e["attention_mask"]) for e in ours] == [
        (t["input_ids"], t["labels"], t["attention_mask"]) for t in kept
    ]
    assert all(e["input_ids"][0] == tok.bos_token_id for e in ours)
    assert all(len(e["input_ids"]) <= cutoff for e in ours)
    if cutoff == 256:  # eos appended where there is room; the long record truncated without one (or,
        # masked, dropped: its prompt alone fills the cutoff)
        ends = [e["input_ids"][-1] == tok.eos_token_id for e in ours]
        assert ends == [True] * 4 + ([False] if train_on_inputs else [])
