"""Studies: many models, one item set, one or more judges, declared in a TOML file and run as one command
(`spec` parses and validates the file, `runner` runs it through the store, `results` turns the outcome into
JSON and an exit status, `cli` holds the commands)."""

from .runner import ModelResult, StudyOutcome, run_study, study_status
from .spec import Study, StudyJudge, StudyModel, load_study

__all__ = ["Study", "StudyJudge", "StudyModel", "load_study", "run_study", "study_status", "ModelResult",
           "StudyOutcome"]
