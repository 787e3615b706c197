"""The optimizer-step plan of the paper's fine-tuning, and the Trainer that follows it.

The official script (`training/finetuning.py`) trained with the transformers `Trainer` of its day
(< 4.46, with peft <= 0.9), whose gradient accumulation differs from today's:

- micro-batches are counted across epochs, and the optimizer steps after every `batch/micro`-th one
  (or at the end of an epoch that has no more micro-batches than that), so a step can span two epochs;
- the run stops after `ceil(epochs * max(micro-batches per epoch // accumulation, 1))` steps, which
  leaves the last micro-batches unused when the counts do not divide (med n=200, batch 128 of 4:
  50 micro-batches an epoch, 3 steps of 32 micro-batches = 384 example passes, not 600);
- each micro-batch's loss is the mean over its own unmasked tokens, divided by the accumulation count
  (today's Trainer normalises by the tokens of the whole accumulated batch instead).

`step_plan` reproduces that plan from the number of examples and the settings (each epoch a fresh
seeded shuffle, as the Trainer's sampler made one); `make_trainer` builds a `Trainer` whose dataset
is the plan (one item = the micro-batches of one optimizer step, in order), so checkpoints, resume,
logging and the learning-rate schedule (linear with warm-up over the planned steps) stay the
Trainer's own.
"""

from __future__ import annotations

import math
import random
from typing import Any

StepPlan = list[list[list[int]]]  # steps -> micro-batches -> example indices


def step_plan(
    n_examples: int, micro_batch_size: int, grad_accum: int, epochs: float, seed: int, max_steps: int | None = None
) -> StepPlan:
    """The examples of every micro-batch of every optimizer step, as the paper's Trainer ran them."""
    per_epoch = math.ceil(n_examples / micro_batch_size)
    updates_per_epoch = max(per_epoch // grad_accum, 1)
    if max_steps:
        total = max_steps
        n_epochs = max_steps // updates_per_epoch + int(max_steps % updates_per_epoch > 0)
    else:
        total = math.ceil(epochs * updates_per_epoch)
        n_epochs = math.ceil(epochs)
    rng = random.Random(seed)
    plan: StepPlan = []
    current: list[list[int]] = []
    seen = 0
    for _ in range(n_epochs):
        order = list(range(n_examples))
        rng.shuffle(order)
        for s in range(per_epoch):
            current.append(order[s * micro_batch_size : (s + 1) * micro_batch_size])
            seen += 1
            if seen % grad_accum == 0 or (per_epoch <= grad_accum and s == per_epoch - 1):
                plan.append(current)
                current = []
                if len(plan) == total:
                    return plan
    return plan


def make_trainer(
    transformers: Any,
    torch: Any,
    *,
    model: Any,
    args: Any,
    plan: StepPlan,
    examples: list[dict],
    collator: Any,
    grad_accum: int,
    callbacks: list,
) -> Any:
    """A `Trainer` that takes one optimizer step per planned step (args must say batch 1, accumulation 1,
    max_steps = len(plan)): it back-propagates each micro-batch's mean loss divided by `grad_accum`.
    It gets no tokenizer (the collator has it), so it never rewrites the model config's special tokens
    to the training pad id."""

    class PlannedTrainer(transformers.Trainer):
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)

        def training_step(self, model: Any, inputs: dict, num_items_in_batch: Any = None) -> Any:
            total = None
            for micro in inputs["micro_batches"]:
                self.current_gradient_accumulation_steps = grad_accum  # each loss / accumulation count
                loss = super().training_step(model, micro, None)
                total = loss if total is None else total + loss
            return total

        def floating_point_ops(self, inputs: dict) -> int:
            return sum(super(PlannedTrainer, self).floating_point_ops(m) for m in inputs["micro_batches"])

    def collate(items: list[list[list[int]]]) -> dict:
        (step,) = items
        return {"micro_batches": [collator([examples[i] for i in micro]) for micro in step]}

    trainer = PlannedTrainer(model=model, args=args, train_dataset=plan, data_collator=collate, callbacks=callbacks)
    trainer.loss_is_scaled_for_ga = False  # a per-micro-batch mean: divide by the accumulation count
    return trainer
