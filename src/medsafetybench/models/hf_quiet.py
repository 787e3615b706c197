"""What transformers prints that is not for our users: its own progress bars ("Loading weights": our
progress bars report the work) and two warnings that are noise here. "Token indices sequence length is
longer than the specified maximum" fires when a long prompt is tokenised: the context-length check
(`models/context.py`) reports what does not fit, per item, once. "mtime may not be reliable on this
filesystem" is the Trainer choosing how to sort checkpoints. Only those loggers are turned down; every
other transformers warning still reaches the terminal."""

from __future__ import annotations

import logging
from typing import Any

#: transformers loggers whose warnings are noise for us (errors still show)
NOISY_LOGGERS = ("transformers.tokenization_utils_base", "transformers.trainer_utils")


def quiet_transformers(transformers: Any | None = None) -> None:
    """Turn transformers' progress bars off and the `NOISY_LOGGERS` down to errors (idempotent).

    Args:
        transformers: the imported module (imported here when None).
    """
    if transformers is None:
        import transformers
    transformers.utils.logging.disable_progress_bar()
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
