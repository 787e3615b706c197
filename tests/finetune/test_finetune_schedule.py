"""The paper's optimizer-step plan (accumulation counted across epochs, the old Trainer's step count)
and the Trainer that follows it: one planned step = each micro-batch's mean loss / accumulation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from medsafetybench.finetune.schedule import step_plan


def sizes(plan: list) -> list[int]:
    return [len(step) for step in plan]


@pytest.mark.parametrize(("n", "steps"), [(200, 3), (400, 9), (900, 21), (1800, 42)])
def test_official_splits_step_counts(n: int, steps: int) -> None:
    """batch 128 of micro-batches of 4 (accumulation 32), 3 epochs: ceil(3 * (n/4 // 32)) steps of 32."""
    plan = step_plan(n, 4, 32, 3.0, seed=0)
    assert sizes(plan) == [32] * steps
    assert all(len(micro) == 4 for step in plan for micro in step)


def test_steps_span_epochs_and_leftovers_are_dropped() -> None:
    """n=200: 50 micro-batches an epoch; step 2 takes the last 18 of epoch 1 and the first 14 of epoch 2;
    the run stops after 3 steps (96 micro-batches), leaving 54 of the 150 unused."""
    plan = step_plan(200, 4, 32, 3.0, seed=0)
    flat = [micro for step in plan for micro in step]
    first_epoch = sorted(i for micro in flat[:50] for i in micro)
    second_epoch = sorted(i for micro in flat[50:96] for i in micro)
    assert first_epoch == list(range(200))
    assert len(second_epoch) == 184 and len(set(second_epoch)) == 184  # a shuffle, stopped early
    assert flat[:50] != flat[50:100]  # each epoch reshuffled


def test_small_data_steps_at_epoch_ends_too() -> None:
    """Fewer micro-batches an epoch than the accumulation: a step at each epoch's end and at every
    32nd micro-batch counted from the start, stopping after epochs * 1 steps (25, 7, 18)."""
    assert sizes(step_plan(100, 4, 32, 3.0, seed=0)) == [25, 7, 18]


def test_partial_micro_batches_fractional_epochs_and_max_steps() -> None:
    plan = step_plan(10, 4, 1, 2.0, seed=3)
    assert [len(m) for step in plan for m in step] == [4, 4, 2, 4, 4, 2]
    assert len(step_plan(900, 4, 32, 1.5, seed=0)) == 11  # ceil(1.5 * 7)
    assert sizes(step_plan(200, 4, 32, 3.0, seed=0, max_steps=5)) == [32] * 5
    assert step_plan(200, 4, 32, 3.0, seed=1) != step_plan(200, 4, 32, 3.0, seed=0)
    assert step_plan(200, 4, 32, 3.0, seed=1) == step_plan(200, 4, 32, 3.0, seed=1)


def test_a_planned_step_is_the_mean_of_micro_batch_means(tiny_model_dir: Path, tmp_path: Path) -> None:
    """One step over two micro-batches of different lengths with accumulation 4 (a short group, as at
    an epoch's end): the LoRA weights move exactly as AdamW on sum(loss_i / 4) after clipping at 1.0.
    The learning rate follows the linear schedule with warm-up over the planned steps."""
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    from medsafetybench.finetune.schedule import make_trainer
    from medsafetybench.finetune.train import LoraSettings, build_examples

    tok = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.pad_token_id, tok.padding_side = 0, "left"
    records = [{"instruction": "Q" * (3 + 7 * k), "input": "", "output": "A refusal " * (1 + k)} for k in range(5)]
    examples, _ = build_examples(records, tok, LoraSettings())
    torch.manual_seed(0)
    model = get_peft_model(
        transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(
            r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            target_modules=["q_proj", "v_proj"],
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        ),
    )
    twin = copy.deepcopy(model)
    plan = [[[0, 1], [2, 3, 4]], [[1, 2]], [[3], [4]]]
    collator = transformers.DataCollatorForSeq2Seq(tok, pad_to_multiple_of=8, padding=True, return_tensors="pt")
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=1,
        gradient_accumulation_steps=1,
        max_steps=3,
        learning_rate=1e-2,
        warmup_steps=1,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    trainer = make_trainer(
        transformers,
        torch,
        model=model,
        args=args,
        plan=plan,
        examples=examples,
        collator=collator,
        grad_accum=4,
        callbacks=[],
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["learning_rate"] for h in logs] == pytest.approx([0.0, 1e-2, 5e-3])

    # the same two first steps by hand on the twin: AdamW on the gradients of sum(loss_i / 4), clipped
    params = [p for p in twin.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    after_first = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    twin.train()
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    losses = []
    for step, lr in zip(plan[:2], (0.0, 1e-2), strict=True):
        total = 0.0
        for micro in step:
            loss = twin(**collator([examples[i] for i in micro])).loss / 4
            loss.backward()
            total += loss.item()
        losses.append(total)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        opt.zero_grad()
    assert [h["loss"] for h in logs[:2]] == pytest.approx(losses, rel=1e-4)
    assert any(not torch.equal(a, b) for a, b in zip(after_first, before, strict=True))
    # a fresh trainer stopped after the same two steps ends where the twin did
    torch.manual_seed(0)
    again = get_peft_model(
        transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(
            r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            target_modules=["q_proj", "v_proj"],
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        ),
    )
    args2 = copy.deepcopy(args)
    args2.max_steps = 2
    make_trainer(
        transformers,
        torch,
        model=again,
        args=args2,
        plan=plan[:2],
        examples=examples,
        collator=collator,
        grad_accum=4,
        callbacks=[],
    ).train()
    ours = [p.detach() for p in again.parameters() if p.requires_grad]
    for a, b in zip(ours, params, strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)
