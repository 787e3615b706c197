"""Fault injection for distributed runs: a training function that fails on purpose.

Ray workers import functions by module name, so a fault that a test hands to the cluster must live in
an importable module, not in the test file. `FlakyTrain` stands in for `finetune.train.finetune` in
`finetune.ray_sweep.RaySweepOptions(train=...)`: the first `fails[n]` tries of the point with that n
raise, counted in files under `marker_dir` (a folder every worker can write: the tests' local cluster
shares one file system); every other call is the real `finetune`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class InjectedFault(RuntimeError):
    """The failure `FlakyTrain` raises."""


@dataclass(frozen=True)
class FlakyTrain:
    marker_dir: str
    fails: dict[int, int] = field(default_factory=dict)
    """Training set size n -> how many tries of that point fail before one succeeds."""

    def tries(self, n: int) -> int:
        """How many times the point with this n has been tried so far."""
        folder = Path(self.marker_dir)
        return len(list(folder.glob(f"n{n}-*"))) if folder.is_dir() else 0

    def __call__(self, base: str, data: Any, out: str | Path, settings: Any, **kwargs: Any) -> Any:
        from ..finetune.train import finetune

        folder = Path(self.marker_dir)
        folder.mkdir(parents=True, exist_ok=True)
        k = self.tries(data.n)
        (folder / f"n{data.n}-{k}-{os.getpid()}").touch()
        if k < self.fails.get(data.n, 0):
            raise InjectedFault(f"injected training failure {k + 1} of {self.fails[data.n]} (n={data.n})")
        return finetune(base, data, out, settings, **kwargs)
