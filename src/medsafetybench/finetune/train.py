"""LoRA safety fine-tuning as the paper's official script did it, made safe to run and re-run.

`finetune(base, data, out, settings)` trains a peft LoRA adapter with the transformers `Trainer` and
writes `out/` = the adapter (so `hf:BASE+OUT` is at once a model spec), `train_data.json` (the exact
records trained on), `manifest.json` (base identity, data origin and SHA-256, n, hyperparameters,
seed, library versions, final loss, training time, throughput) and, with `merge=True`, `merged/` (the
base with the adapter folded in, plus its tokenizer).

Every check (settings, base model, data, overlap with MedSafety-Eval, the output path) runs before a
byte is written. Training happens in a sibling `.OUT.partial/` renamed to `out` at the very end, so
`out` exists only when complete; a killed run leaves its checkpoints in the partial folder and
`resume=True` continues from the last one (Trainer `resume_from_checkpoint`).

Everything follows the official `training/finetuning.py` (+ `prompter.py`, `templates/alpaca.json`;
docs/paper-fidelity.md lists each setting with the test that pins it): the Alpaca template, the whole
text (prompt + response) tokenised as one string with the tokenizer's defaults and truncated at
`cutoff_len`, an eos appended when there is room, the loss on every token (`train_on_inputs`, the
script's default; without it the prompt's tokens are masked), pad id 0 and left padding, its
hyperparameters, and its optimizer-step plan (`schedule.py`). CPU trains in fp32; CUDA as the script
did (`precision="paper"`: weights loaded in fp16, held in fp32, fp16 autocast with a grad scaler), or
in bf16 (`precision="bf16"`, half the memory).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import MissingExtra, UserError
from ..models.formats import ALPACA_TEMPLATE
from ..models.hf_backend import _Source
from ..models.spec import parse_spec
from .data import TrainingData, check_no_eval_overlap, record_request
from .schedule import make_trainer, step_plan

MANIFEST = "manifest.json"
TRAIN_DATA = "train_data.json"
MANIFEST_FORMAT = "medsafetybench-finetune/1"
TEMPLATES = ("alpaca", "chat")
PRECISIONS = ("paper", "bf16")
# What a fine-tune with given settings does beyond its settings (tokenisation, step plan); part of the
# adapter key, so adapters trained by an earlier method are never reused as if trained by this one.
TRAINING_METHOD = "finetuning.py/2"
TRAIN_PAD_ID, TRAIN_PADDING_SIDE, PAD_TO_MULTIPLE_OF = 0, "left", 8  # the official script's padding
ALPACA_INPUT_TEMPLATE = (
    "Below is an instruction that describes a task, paired with an input that provides "
    "further context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)


@dataclass(frozen=True)
class LoraSettings:
    """Hyperparameters; the defaults are the official `training/finetuning.py`'s: r 8, alpha 16,
    dropout 0.05 on q_proj/v_proj, lr 3e-4, 3 epochs, batch 128 of micro-batches of 4, cutoff 256,
    10 warm-up steps, loss on the prompt tokens too (train_on_inputs). The seed is ours (the script
    shuffles unseeded)."""

    epochs: float = 3.0
    lr: float = 3e-4
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    batch_size: int = 128
    micro_batch_size: int = 4
    cutoff_len: int = 256
    warmup_steps: int = 10
    train_on_inputs: bool = True
    prompt_template: str = "alpaca"
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimizer steps (None: run the epochs)

    def validate(self) -> LoraSettings:
        checks = [
            (self.epochs > 0, "--epochs must be positive"),
            (self.lr > 0, "--lr must be positive"),
            (self.lora_r >= 1, "--lora-r must be at least 1"),
            (self.lora_alpha > 0, "--lora-alpha must be positive"),
            (0 <= self.lora_dropout < 1, "--lora-dropout must be in [0, 1)"),
            (bool(self.target_modules), "--target-modules names no module"),
            (self.micro_batch_size >= 1, "--micro-batch-size must be at least 1"),
            (
                self.batch_size >= self.micro_batch_size and self.batch_size % self.micro_batch_size == 0,
                "--batch-size must be a multiple of --micro-batch-size",
            ),
            (self.cutoff_len >= 8, "--cutoff-len must be at least 8 tokens"),
            (self.warmup_steps >= 0, "--warmup-steps must be 0 or more"),
            (self.prompt_template in TEMPLATES, "--prompt-template must be alpaca or chat"),
            (self.max_steps is None or self.max_steps >= 1, "--max-steps must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"{message} (settings: {self.to_dict()})")
        return self

    @property
    def grad_accum(self) -> int:
        return self.batch_size // self.micro_batch_size

    def optimizer_arguments(self) -> dict:
        """The `TrainingArguments` that shape the optimisation: the script's warm-up, lr and AdamW, and the
        Trainer defaults it relied on (linear schedule, no weight decay, gradient clipping at 1.0)."""
        return {
            "learning_rate": self.lr,
            "warmup_steps": self.warmup_steps,
            "lr_scheduler_type": "linear",
            "optim": "adamw_torch",
            "weight_decay": 0.0,
            "max_grad_norm": 1.0,
        }

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        d["epochs"], d["lr"] = float(self.epochs), float(self.lr)  # 3 and 3.0 are the same plan (same key)
        return d


class TrainProgress(Protocol):
    def start(self, total_steps: int) -> None: ...

    def update(self, step: int, loss: float | None) -> None: ...


@dataclass(frozen=True)
class FinetuneResult:
    out: Path
    manifest: dict
    reused: bool  # True when `out` was already complete and nothing was trained
    model: Any = None  # the trained model in memory: the peft model, or the merged one with merge=True
    # (None when reused); drop it to free memory

    @property
    def model_spec(self) -> str:
        return self.manifest["model_spec"]


# ------------------------------------------------------------------------------------ small helpers


def resolve_base(base: str) -> tuple[str, _Source]:
    """(base path or hub id, its source) from `hf:PATH`, or a bare path."""
    text = base.strip()
    if ":" in text.split("/", 1)[0]:
        spec = parse_spec(text)
        if spec.backend != "hf":
            raise UserError(f"--base '{base}': fine-tuning needs a local transformers model, hf:PATH")
        if spec.adapter:
            raise UserError(
                f"--base '{base}' already has an adapter: merge it first (finetune --merge) "
                "and fine-tune the merged model"
            )
        text = spec.name
    return text, _Source.resolve(text, "--base model")


def base_identity(source: _Source) -> str:
    return f"{source.ref}|w={source.fingerprint()}"


def adapter_key(base_id: str, data_sha256: str, settings: LoraSettings) -> str:
    """Content key of a fine-tune: the same base weights, data and settings give the same key."""
    blob = json.dumps(
        {"base": base_id, "data": data_sha256, "settings": settings.to_dict(), "method": TRAINING_METHOD},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("medsafetybench", "torch", "transformers", "peft", "accelerate"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            if name == "medsafetybench":
                from .._version import __version__

                out[name] = __version__
    return out


def alpaca_text(instruction: str, input_text: str | None = None, output: str | None = None) -> str:
    """The official Prompter's `generate_prompt`: the with-input template when `input` is non-empty (as
    given, not stripped), the response appended when there is one."""
    text = (
        ALPACA_INPUT_TEMPLATE.format(instruction=instruction, input=input_text)
        if input_text
        else ALPACA_TEMPLATE.format(instruction=instruction)
    )
    return f"{text}{output}" if output else text


def _prompt_text(record: dict, template: str, tokenizer: Any) -> str:
    if template == "alpaca":
        return alpaca_text(record["instruction"], record.get("input"))
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("--prompt-template chat: the base model's tokenizer has no chat template; use alpaca")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": record_request(record)}], tokenize=False, add_generation_prompt=True
    )


def _tokenize(tokenizer: Any, text: str, cutoff: int, add_eos: bool) -> list[int]:
    """The official `tokenize`: the tokenizer's special tokens (no second `<s>` when a chat template
    already wrote one), truncation at `cutoff`, an eos appended when there is room and none ends it."""
    bos = getattr(tokenizer, "bos_token", None)
    ids = list(
        tokenizer(text, truncation=True, max_length=cutoff, add_special_tokens=not (bos and text.startswith(bos)))[
            "input_ids"
        ]
    )
    eos = tokenizer.eos_token_id
    if add_eos and eos is not None and (not ids or ids[-1] != eos) and len(ids) < cutoff:
        ids.append(eos)
    return ids


def build_examples(records: Sequence[dict], tokenizer: Any, settings: LoraSettings) -> tuple[list[dict], int]:
    """Token ids and labels per record (the official `generate_and_tokenize_prompt`): the prompt and
    response as one text; without `train_on_inputs`, the first as many labels as the prompt alone has
    tokens are masked. Returns the examples and how many records were dropped because the cutoff left
    them no unmasked label (only possible without `train_on_inputs`)."""
    examples, dropped = [], 0
    for r in records:
        prompt = _prompt_text(r, settings.prompt_template, tokenizer)
        full_text = (
            prompt + r["output"]
            if settings.prompt_template == "chat"
            else alpaca_text(r["instruction"], r.get("input"), r["output"])
        )
        full = _tokenize(tokenizer, full_text, settings.cutoff_len, add_eos=True)
        labels = list(full)
        if not settings.train_on_inputs:
            k = min(len(_tokenize(tokenizer, prompt, settings.cutoff_len, add_eos=False)), len(full))
            labels[:k] = [-100] * k
            if k >= len(full):
                dropped += 1
                continue
        examples.append({"input_ids": full, "attention_mask": [1] * len(full), "labels": labels})
    return examples, dropped


def _precision(torch: Any, device: str, precision: str) -> tuple[Any, bool, dict]:
    """(load dtype, upcast to fp32 after loading, Trainer precision flags). CPU: fp32. CUDA "paper":
    the official script's fp16 load, cast to fp32 by peft's `prepare_model_for_int8_training` (peft
    <= 0.9 casts every fp16 parameter), trained with fp16 autocast; "bf16": bf16 weights and autocast."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision '{precision}' is unknown: use {' or '.join(PRECISIONS)}")
    if not device.startswith("cuda"):
        return torch.float32, False, {}
    if precision == "bf16":
        return torch.bfloat16, False, {"bf16": True}
    return torch.float16, True, {"fp16": True}


def _check_out(out: Path, resume: bool) -> dict | None:
    """The finished manifest when `out` is complete and `resume` is set; None when `out` is free."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()):
        if resume and (out / MANIFEST).is_file():
            return json.loads((out / MANIFEST).read_text())
        raise UserError(
            f"--out {out} exists and is not empty; choose a new --out "
            + ("(it holds no finished fine-tune)" if resume else "or pass --resume")
        )
    return None


def partial_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def _checkpoints(path: Path) -> list[Path]:
    ck = path / "checkpoints"
    return sorted(ck.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if ck.is_dir() else []


# ----------------------------------------------------------------------------------------- training


def _stable_adapter_config(folder: Path) -> None:
    """peft writes `target_modules` from a set, in an order that changes between processes; sort it so
    the same training gives the same files (and the same adapter fingerprint) everywhere."""
    path = folder / "adapter_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def finetune(
    base: str,
    data: TrainingData,
    out: str | Path,
    settings: LoraSettings | None = None,
    *,
    merge: bool = False,
    resume: bool = False,
    data_dir: str | Path | None = None,
    device: str | None = None,
    progress: TrainProgress | None = None,
    check_overlap: bool = True,
    save_steps: int | None = None,
    precision: str = "paper",
) -> FinetuneResult:
    """Fine-tune `base` on `data` into `out` (see module docstring); returns the manifest.

    `save_steps`: optimizer steps between resumable checkpoints (default: a tenth of the run, so about
    ten checkpoints, the last one kept); 0 saves none (a killed run then starts over). `precision` on
    CUDA: "paper" (fp16-loaded weights held in fp32, fp16 autocast) or "bf16"; CPU is always fp32."""
    settings = (settings or LoraSettings()).validate()
    if precision not in PRECISIONS:
        raise UserError(f"--precision '{precision}' is unknown: use {' or '.join(PRECISIONS)}")
    out = Path(out).expanduser().resolve()
    base_ref, source = resolve_base(base)
    done = _check_out(out, resume)
    if done is not None:
        return FinetuneResult(out, done, reused=True)
    if not data.records:
        raise UserError("the training data has no records")
    overlap_checked = (
        check_no_eval_overlap(data.records, data_dir=data_dir, what=f"training data ({data.origin})")
        if check_overlap
        else False
    )
    try:
        import torch
        import transformers
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise MissingExtra("hf", exc.name or "torch/transformers/peft", "LoRA fine-tuning") from exc
    from ..models.hf_quiet import quiet_transformers

    quiet_transformers(transformers)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype, upcast, amp = _precision(torch, device, precision)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source.ref)
        model = transformers.AutoModelForCausalLM.from_pretrained(source.ref, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise UserError(f"could not load --base '{base}': {str(exc).splitlines()[0]}") from exc
    if upcast:
        model = model.float()
    examples, dropped = build_examples(data.records, tokenizer, settings)
    if not examples:
        raise UserError(f"no record has a response token within --cutoff-len {settings.cutoff_len}; raise it")
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in settings.target_modules if m not in present]
    if missing:
        raise UserError(
            f"--target-modules {','.join(missing)}: no such module in the base model "
            f"(e.g. {', '.join(sorted(n for n in present if 'proj' in n)[:8]) or 'none found'})"
        )
    base_id = base_identity(source)
    key = adapter_key(base_id, data.sha256, settings)

    work = partial_dir(out)
    state_file = work / "partial.json"
    if work.exists():
        stale = not resume or not state_file.is_file() or json.loads(state_file.read_text()).get("key") != key
        if stale:
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps({"key": key}) + "\n")
    try:
        result = _train(
            torch,
            transformers,
            model,
            tokenizer,
            examples,
            settings,
            work,
            amp,
            LoraConfig,
            get_peft_model,
            resume,
            progress,
            save_steps,
        )
        peft_model, stats = result
        peft_model.save_pretrained(work)
        _stable_adapter_config(work)
        (work / TRAIN_DATA).write_text(data.to_json())
        merged_path = None
        trained = peft_model
        if merge:
            merged = trained = peft_model.merge_and_unload()
            merged.save_pretrained(work / "merged")
            tokenizer.save_pretrained(work / "merged")
            merged_path = str(out / "merged")
        shutil.rmtree(work / "checkpoints", ignore_errors=True)
        state_file.unlink()
        manifest = {
            "format": MANIFEST_FORMAT,
            "model_spec": f"hf:{base_ref}+{out}",
            "adapter_key": key,
            "base": {"spec": base, "ref": source.ref, "identity": base_id},
            "data": {
                "kind": data.kind,
                "n": data.n,
                "origin": data.origin,
                "file": data.source_file,
                "sha256": data.sha256,
                "train_file": TRAIN_DATA,
                "examples": len(examples),
                "dropped_no_response_token": dropped,
                "eval_overlap_checked": overlap_checked,
            },
            "hyperparameters": settings.to_dict(),
            "seed": settings.seed,
            "versions": _versions(),
            "device": device,
            "precision": precision if device.startswith("cuda") else "fp32",
            "dtype": str(next(peft_model.parameters()).dtype).replace("torch.", ""),
            "method": TRAINING_METHOD,
            "merged": merged_path,
            **stats,
            "created_at": time.time(),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.rename(work, out)
    except BaseException:
        if not _checkpoints(work):  # nothing worth resuming from: leave no trace
            shutil.rmtree(work, ignore_errors=True)
        raise
    return FinetuneResult(out, manifest, reused=False, model=trained.eval())


def _train(
    torch: Any,
    transformers: Any,
    model: Any,
    tokenizer: Any,
    examples: list[dict],
    settings: LoraSettings,
    work: Path,
    amp: dict,
    LoraConfig: Any,
    get_peft_model: Any,
    resume: bool,
    progress: TrainProgress | None,
    save_steps: int | None,
) -> tuple[Any, dict]:
    transformers.set_seed(settings.seed)
    lora = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    plan = step_plan(
        len(examples),
        settings.micro_batch_size,
        settings.grad_accum,
        settings.epochs,
        settings.seed,
        settings.max_steps,
    )
    total = len(plan)
    if save_steps is None:
        save_steps = max(1, total // 10)
    args = transformers.TrainingArguments(
        output_dir=str(work / "checkpoints"),
        per_device_train_batch_size=1,
        gradient_accumulation_steps=1,
        num_train_epochs=1,
        max_steps=total,
        **settings.optimizer_arguments(),
        logging_steps=1,
        save_strategy="steps" if save_steps > 0 else "no",
        save_steps=max(1, save_steps),
        save_total_limit=1,
        eval_strategy="no",
        report_to="none",
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=not amp,
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        **amp,
    )
    # the official script pads with id 0 on the left; padding is masked, but left padding shifts the
    # position ids of the shorter examples in a micro-batch, so it is kept (restored afterwards)
    saved = (tokenizer.pad_token, tokenizer.padding_side)
    tokenizer.pad_token_id, tokenizer.padding_side = TRAIN_PAD_ID, TRAIN_PADDING_SIDE
    collator = transformers.DataCollatorForSeq2Seq(
        tokenizer, pad_to_multiple_of=PAD_TO_MULTIPLE_OF, padding=True, label_pad_token_id=-100, return_tensors="pt"
    )
    callbacks = [_progress_callback(transformers, progress, total)] if progress is not None else []
    trainer = make_trainer(
        transformers,
        torch,
        model=peft_model,
        args=args,
        plan=plan,
        examples=examples,
        collator=collator,
        grad_accum=settings.grad_accum,
        callbacks=callbacks,
    )
    trainer.remove_callback(transformers.PrinterCallback)  # progress goes to `progress`, never to stdout
    checkpoint = str(_checkpoints(work)[-1]) if resume and _checkpoints(work) else None
    t0 = time.perf_counter()
    try:
        output = trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        tokenizer.pad_token, tokenizer.padding_side = saved
    seconds = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    done = [i for step in plan[: trainer.state.global_step] for micro in step for i in micro]
    tokens = sum(len(examples[i]["input_ids"]) for i in done)
    stats = {
        "steps": int(trainer.state.global_step),
        "epochs_done": round(len(done) / len(examples), 4),
        "example_passes": len(done),
        "resumed_from": Path(checkpoint).name if checkpoint else None,
        "final_loss": losses[-1] if losses else None,
        "train_loss_mean": float(output.training_loss),
        "train_tokens": tokens,
        "train_seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1) if seconds > 0 else None,
    }
    return peft_model, stats


def _progress_callback(transformers: Any, progress: TrainProgress, total: int) -> Any:
    class _Callback(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            progress.start(state.max_steps or total)

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            if logs and "loss" in logs:
                progress.update(state.global_step, float(logs["loss"]))

    return _Callback()


def load_manifest(path: str | Path) -> dict:
    """The manifest of a finished fine-tune directory (UserError when there is none)."""
    f = Path(path) / MANIFEST
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        raise UserError(f"{path}: no finished fine-tune here (missing or unreadable {MANIFEST})") from None
