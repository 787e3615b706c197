"""Where things are, for every test at any depth: the repository, `../shared/`, its data and
reference code, and the store fixtures."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
FIXTURES = REPO / "tests" / "fixtures"
