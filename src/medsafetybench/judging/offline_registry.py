"""Registry hooks shared by the offline judges (`offline-v1`, `offline-v2`, `offline-v3`, and
`offline`, the default):
no arguments, no model, the packages each needs checked without importing them."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import MissingExtra, UserError


class OfflineJudgeSpec:
    """Mixin: `check_spec` / `from_spec` for a judge class that wraps no model."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset()  # the CLI's batch_size is for models, not for this judge
    REQUIRES: ClassVar[tuple[str, ...]] = ()
    SPEC_NAME: ClassVar[str] = "offline"

    @classmethod
    def check_spec(cls, args: str) -> None:
        """No arguments, and the `offline` extra's packages are installed (nothing is loaded)."""
        if args:
            raise UserError(f"the offline judge takes no arguments (got '{args}'); write --judge {cls.SPEC_NAME}")
        for module in cls.REQUIRES:
            if importlib.util.find_spec(module) is None:
                raise MissingExtra("offline", module, "The offline judge")

    @classmethod
    def from_spec(cls, args: str, *, model_options: Mapping[str, Any], **options: Any) -> Any:
        """The shipped judge (model options are ignored: it wraps no model)."""
        cls.check_spec(args)
        return cls(**options)
