"""`medsafety finetune` and `medsafety sweep`: thin CLI layers over `finetune.train` and `finetune.sweep`
(registered into the main app by `cli.COMMAND_MODULES`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..cli_common import err, out
from ..errors import UserError

Opt = typer.Option


class RichTrainProgress:
    """A rich bar over optimizer steps with the latest training loss."""

    def __init__(self, console: Console, label: str) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.label = label
        self.task: int | None = None

    def start(self, total_steps: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task(f"train {self.label}", total=total_steps, loss="-")

    def update(self, step: int, loss: float | None) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=step, loss="-" if loss is None else f"{loss:.4f}")
            if step >= (self.progress.tasks[0].total or 0):
                self.progress.stop()


def _settings(
    epochs: float,
    lr: float,
    lora_r: int,
    lora_alpha: int,
    lora_dropout: float,
    target_modules: str,
    batch_size: int,
    micro_batch_size: int,
    cutoff_len: int,
    warmup_steps: int,
    seed: int,
    train_on_inputs: bool,
    prompt_template: str,
    max_steps: int | None,
):
    from .train import LoraSettings

    return LoraSettings(
        epochs=epochs,
        lr=lr,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=tuple(t.strip() for t in target_modules.split(",") if t.strip()),
        batch_size=batch_size,
        micro_batch_size=micro_batch_size,
        cutoff_len=cutoff_len,
        warmup_steps=warmup_steps,
        seed=seed,
        train_on_inputs=train_on_inputs,
        prompt_template=prompt_template,
        max_steps=max_steps,
    ).validate()


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune_cmd(
        base: Annotated[str, Opt("--base", help="Base model: hf:PATH (a save_pretrained folder).")],
        train_data: Annotated[
            str | None, Opt("--train-data", help="med (MedSafety-Improve), gen (general safety) or both.")
        ] = None,
        n: Annotated[
            int | None, Opt("--n", help="Demonstrations to train on (official split when n matches one).")
        ] = None,
        out_dir: Annotated[Path | None, Opt("--out", help="Output folder (default ./finetune-<kind>-n<n>).")] = None,
        data_file: Annotated[
            Path | None, Opt("--data-file", help="Your own Alpaca JSON/JSONL instead of --train-data.")
        ] = None,
        data: Annotated[
            str | None, Opt("--data", help="Local copy of the official release (else $MEDSAFETYBENCH_DATA or cache).")
        ] = None,
        epochs: Annotated[float, Opt(help="Training epochs (paper: 3).")] = 3.0,
        lr: Annotated[float, Opt("--lr", help="Learning rate (paper: 3e-4).")] = 3e-4,
        lora_r: Annotated[int, Opt(help="LoRA rank (paper: 8).")] = 8,
        lora_alpha: Annotated[int, Opt(help="LoRA alpha (paper: 16).")] = 16,
        lora_dropout: Annotated[float, Opt(help="LoRA dropout (paper: 0.05).")] = 0.05,
        target_modules: Annotated[
            str, Opt(help="Comma list of modules to adapt (paper: q_proj,v_proj).")
        ] = "q_proj,v_proj",
        batch_size: Annotated[int, Opt(help="Examples per optimizer step (paper: 128).")] = 128,
        micro_batch_size: Annotated[int, Opt(help="Examples per forward pass (paper: 4).")] = 4,
        cutoff_len: Annotated[int, Opt(help="Maximum tokens per example (paper: 256).")] = 256,
        warmup_steps: Annotated[int, Opt(help="Linear warm-up steps (paper: 10).")] = 10,
        max_steps: Annotated[int | None, Opt(help="Stop after this many optimizer steps.")] = None,
        seed: Annotated[int, Opt(help="Seed for sampling data and training.")] = 0,
        merge: Annotated[bool, Opt("--merge", help="Also write the merged model to OUT/merged.")] = False,
        train_on_inputs: Annotated[
            bool,
            Opt(
                "--train-on-inputs/--no-train-on-inputs",
                help="Loss on the prompt tokens too (paper: yes); --no-train-on-inputs masks them.",
            ),
        ] = True,
        precision: Annotated[
            str,
            Opt(
                help="On CUDA: paper (fp16-loaded weights held in fp32, fp16 autocast, as the official script) or bf16 "
                "(half the memory). CPU trains in fp32."
            ),
        ] = "paper",
        prompt_template: Annotated[str, Opt(help="alpaca (paper) or chat (the tokenizer's chat template).")] = "alpaca",
        resume: Annotated[bool, Opt("--resume", help="Continue an interrupted run from its last checkpoint.")] = False,
        as_json: Annotated[bool, Opt("--json", help="Print the manifest as JSON.")] = False,
    ) -> None:
        """LoRA safety fine-tuning as in the paper; writes an adapter usable as hf:BASE+OUT."""
        from .data import resolve_training_data
        from .train import finetune, resolve_base

        kind, data_dir = train_data, Path(data) if data else None
        resolve_base(base)  # a wrong --base is reported before any data is read or downloaded
        settings = _settings(
            epochs,
            lr,
            lora_r,
            lora_alpha,
            lora_dropout,
            target_modules,
            batch_size,
            micro_batch_size,
            cutoff_len,
            warmup_steps,
            seed,
            train_on_inputs,
            prompt_template,
            max_steps,
        )
        td = resolve_training_data(kind, n, data_file=data_file, data_dir=data_dir, seed=seed)
        target = out_dir or Path(f"finetune-{td.kind}-n{td.n}")
        progress = None if as_json else RichTrainProgress(err, f"{td.kind} n={td.n}")
        try:
            result = finetune(
                base,
                td,
                target,
                settings,
                merge=merge,
                resume=resume,
                data_dir=data_dir,
                progress=progress,
                precision=precision,
            )
        except KeyboardInterrupt:
            err.print("interrupted: re-run the same command with --resume to continue from the last checkpoint")
            raise typer.Exit(130) from None
        m = result.manifest
        if as_json:
            print(json.dumps(m, indent=1))
            return
        if result.reused:
            out.print(f"already finished: {escape(str(result.out))}", soft_wrap=True)
        out.print(
            f"adapter: {escape(str(result.out))}  ({m['data']['examples']} examples, {m['steps']} steps, "
            f"final loss {m['final_loss']:.4f}, {m['train_seconds']:.1f} s, {m['tokens_per_second']} tokens/s)",
            soft_wrap=True,
        )
        if m.get("merged"):
            out.print(f"merged model: {escape(m['merged'])}", soft_wrap=True)
        out.print(
            f"use it as: {escape(m['model_spec'])}  (--prompt-format paper asks it as the paper asked its "
            f"fine-tuned models, in the base family's format; --prompt-format "
            f"{m['hyperparameters']['prompt_template']} is the training template)",
            soft_wrap=True,
        )

    @app.command("sweep")
    def sweep_cmd(
        base: Annotated[str, Opt("--base", help="Base model: hf:PATH.")],
        train_data: Annotated[
            str | None, Opt("--train-data", help="Comma list of med, gen, both (default: all three).")
        ] = None,
        n: Annotated[str, Opt("--n", help="Comma list of n (the base is n=0).")] = "200,400,600,800,900",
        judge: Annotated[str, Opt("--judge", "-j", help="'offline' or a model spec for an LLM judge.")] = "offline",
        limit: Annotated[int | None, Opt(min=1, help="Evaluate on the first N MedSafety-Eval items.")] = None,
        sample: Annotated[
            int | None,
            Opt(
                min=1, help="Evaluate on N MedSafety-Eval items sampled by --seed, stratified by principle and source."
            ),
        ] = None,
        medqa: Annotated[
            str | None,
            Opt(
                "--medqa",
                help="Comma list of medical QA tasks to score per point (medqa, medmcqa, pubmedqa, mmlu_medical).",
            ),
        ] = None,
        medqa_limit: Annotated[int | None, Opt(min=1, help="Questions per medical QA task.")] = None,
        medqa_dir: Annotated[
            Path | None,
            Opt(
                "--medqa-dir",
                help="Medical QA folder: over-refusal questions and --medqa tasks (else $MEDSAFETYBENCH_MEDQA_DATA).",
            ),
        ] = None,
        benign: Annotated[
            Path | None, Opt("--benign", help="Benign questions file (CSV/JSONL/JSON with a question column).")
        ] = None,
        benign_limit: Annotated[int, Opt(min=1, help="Benign questions for over-refusal.")] = 200,
        data: Annotated[
            str | None, Opt("--data", help="Local copy of the official release (else $MEDSAFETYBENCH_DATA or cache).")
        ] = None,
        project: Annotated[Path | None, Opt("--project", help="Project directory (run store and adapters).")] = None,
        max_new_tokens: Annotated[int, Opt(min=1, help="New tokens per response (paper: 512).")] = 512,
        batch_size: Annotated[int, Opt(min=1, help="Generation batch size.")] = 8,
        epochs: Annotated[float, Opt(help="Training epochs (paper: 3).")] = 3.0,
        lr: Annotated[float, Opt("--lr", help="Learning rate (paper: 3e-4).")] = 3e-4,
        lora_r: Annotated[int, Opt(help="LoRA rank.")] = 8,
        lora_alpha: Annotated[int, Opt(help="LoRA alpha.")] = 16,
        lora_dropout: Annotated[float, Opt(help="LoRA dropout.")] = 0.05,
        target_modules: Annotated[str, Opt(help="Modules to adapt.")] = "q_proj,v_proj",
        train_batch_size: Annotated[int, Opt(help="Training batch (paper: 128).")] = 128,
        micro_batch_size: Annotated[int, Opt(help="Training micro-batch (paper: 4).")] = 4,
        cutoff_len: Annotated[int, Opt(help="Maximum tokens per training example.")] = 256,
        warmup_steps: Annotated[int, Opt(help="Warm-up steps (paper: 10).")] = 10,
        train_on_inputs: Annotated[
            bool, Opt("--train-on-inputs/--no-train-on-inputs", help="Loss on the prompt tokens too (paper: yes).")
        ] = True,
        seed: Annotated[int, Opt(help="Seed.")] = 0,
        prompt_template: Annotated[
            str, Opt(help="alpaca or chat: for training and for evaluating every point.")
        ] = "alpaca",
        engine: Annotated[
            str,
            Opt(
                help="local (one point after another in this process), ray (local Ray cluster or $RAY_ADDRESS) or "
                "ray:ADDRESS: every point on the cluster (docs/cluster.md)."
            ),
        ] = "local",
        replicas: Annotated[int, Opt(min=1, help="Model replicas per point with --engine ray.")] = 1,
        max_retries: Annotated[int, Opt(min=0, help="With --engine ray: tries of a failed point after the first.")] = 1,
        as_json: Annotated[bool, Opt("--json", help="Print the points as JSON.")] = False,
    ) -> None:
        """The paper's study: fine-tune at each n per data kind, evaluate each point with the same judge on
        the same items, compare with the base (n=0), measure over-refusal. Everything is cached."""
        from ..report.console import RichProgress
        from ..store import Store
        from ..store import project_dir as _project
        from .sweep import SweepPlan, kinds_from, parse_ns, run_sweep
        from .train import resolve_base

        kinds, data_dir = train_data, Path(data) if data else None
        resolve_base(base)
        settings = _settings(
            epochs,
            lr,
            lora_r,
            lora_alpha,
            lora_dropout,
            target_modules,
            train_batch_size,
            micro_batch_size,
            cutoff_len,
            warmup_steps,
            seed,
            train_on_inputs,
            prompt_template,
            None,
        )
        plan = SweepPlan(
            base=base,
            kinds=kinds_from(kinds or "med,gen,both"),
            ns=parse_ns(n),
            judge=judge,
            settings=settings,
            limit=limit,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            data_dir=str(data_dir) if data_dir else None,
            benign_file=str(benign) if benign else None,
            medqa_dir=str(medqa_dir) if medqa_dir else None,
            benign_limit=benign_limit,
            medqa_tasks=tuple(t.strip() for t in medqa.split(",")) if medqa else None,
            medqa_limit=medqa_limit,
            sample=sample,
            sample_seed=seed,
        )
        proj = _project(project)
        store = Store.open_project(proj)

        def train_progress(label: str, _n: int):
            return None if as_json else RichTrainProgress(err, label)

        from ..models.engine import parse_engine

        engine_name, address = parse_engine(engine)
        if engine_name == "local" and replicas != 1:
            raise UserError(f"--replicas {replicas} needs --engine ray")
        log = (lambda s: None) if as_json else (lambda s: err.print(escape(s)))
        with store, RichProgress(err, enabled=not as_json) as progress:
            if engine_name == "ray":
                from .ray_sweep import RaySweepOptions, run_sweep_ray

                options = RaySweepOptions(address=address, replicas=replicas, max_retries=max_retries)
                result = run_sweep_ray(store, plan, proj, options, progress=progress, log=log)
            else:
                result = run_sweep(store, plan, proj, progress=progress, train_progress=train_progress, log=log)
        failed = [str(f) for f in result.failures]
        if as_json:
            print(
                json.dumps(
                    {
                        "sweep_id": result.sweep_id,
                        "points": [p.to_dict() for p in result.points],
                        "over_refusal_note": result.benign_note,
                        "medqa_note": result.medqa_note,
                        "failed": failed,
                    },
                    indent=1,
                    default=str,
                )
            )
        else:
            from .tables import sweep_table

            out.print(sweep_table(result, out.width))
            for note in (result.benign_note, result.medqa_note):
                if note:
                    out.print(escape(note))
            out.print(f"sweep {result.sweep_id}: rows in table sweep_points of {store.path}")
        for line in failed:
            err.print(f"[red]point failed:[/red] {escape(line)}", soft_wrap=True)
        if failed:
            err.print("re-run the same command to retry the failed points (finished ones come from the store)")
            raise typer.Exit(1)
