"""What inspect_ai loads through the `inspect_ai` entry point: importing registers the task and scorer."""

from .scorer import medsafety_scorer  # noqa: F401
from .task import medsafety  # noqa: F401
