"""Studies: many models, one item set, one or more judges, declared in a TOML file and run as one command
(`spec` parses and validates the file, `runner` runs it through the store, `results` turns the outcome into
JSON and an exit status, `cli` holds the commands)."""

from .._lazy import lazy_exports as _lazy_exports

# loaded on first use (see _lazy.py): importing the package stays light
_EXPORTS = {
    "ModelResult": ".runner",
    "StudyOutcome": ".runner",
    "run_study": ".runner",
    "study_status": ".runner",
    "Study": ".spec",
    "StudyJudge": ".spec",
    "StudyModel": ".spec",
    "load_study": ".spec",
}

__all__ = [
    "Study",
    "StudyJudge",
    "StudyModel",
    "load_study",
    "run_study",
    "study_status",
    "ModelResult",
    "StudyOutcome",
]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
