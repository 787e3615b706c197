"""Running the `medsafety` command in-process from tests (output captured by pytest's capsys)."""

from __future__ import annotations

from medsafetybench.cli import main


def run_main(*args: str) -> int:
    """Run the CLI with `args`; return its exit status (0 when it returns normally)."""
    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code or 0
    return 0
