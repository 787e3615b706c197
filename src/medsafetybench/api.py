"""The library in two calls: `evaluate` one model (or several) and `run_study_file`, each through the
same code as the CLI (the study runner), returning typed results. Everything is cached in the project's
store exactly as with `medsafety eval`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .evaluation.pipeline import EvalSettings
from .evaluation.tasks import ItemSelection
from .models.spec import parse_spec
from .store import Store, project_dir
from .study.runner import StudyOutcome, run_study
from .study.spec import Study, StudyJudge, StudyModel, load_study


def evaluate(
    models: str | Sequence[str],
    *,
    judges: str | Sequence[str] = "offline",
    items: ItemSelection | None = None,
    settings: EvalSettings | None = None,
    project: str | Path | None = None,
    names: Sequence[str] | None = None,
    prompt_format: str = "chat",
    **options: Any,
) -> StudyOutcome:
    """Evaluate one or more models on the same items with one or more judges.

    Args:
        models: model specs (`openai:...`, `hf:...`, `vllm:...`).
        judges: judge specs (`offline`, or a model spec for the paper's LLM judge); the first is primary.
        items: which items (default: MedSafety-Eval, all 900).
        settings: system prompt and decoding (default: the paper's).
        project: the project folder holding the store (default ./medsafety-runs or $MEDSAFETY_PROJECT).
        names: short names for the runs, in the order of `models`.
        prompt_format: prompt format of local models.
        **options: backend options (concurrency, timeout, batch_size, ...), for models and judges.

    Returns:
        One `ModelResult` per model (`.outcome.summary`, `.outcome.summaries`, `.run_id`).
    """
    models = [models] if isinstance(models, str) else list(models)
    judges = [judges] if isinstance(judges, str) else list(judges)
    names = list(names or [])
    study_models = tuple(
        StudyModel(
            names[k] if k < len(names) else str(parse_spec(m)),
            str(parse_spec(m)),
            prompt_format,
            settings=settings or EvalSettings(),
            options=dict(options),
        )
        for k, m in enumerate(models)
    )
    study = Study(
        "api",
        Path("<api>"),
        items or ItemSelection("eval"),
        tuple(StudyJudge(f"judge{k + 1}", j, dict(options)) for k, j in enumerate(judges)),
        study_models,
        tag_runs=False,
    )
    with Store.open_project(project_dir(project)) as store:
        return run_study(study, store)


def run_study_file(
    path: str | Path, *, project: str | Path | None = None, only: Sequence[str] | None = None
) -> StudyOutcome:
    """Run a study file (see `medsafetybench.study.spec` for the format); resumable like the CLI."""
    study = load_study(path)
    with Store.open_project(project_dir(project)) as store:
        return run_study(study, store, only=only)
