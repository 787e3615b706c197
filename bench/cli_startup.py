"""How long `medsafety --help` takes, beside the import time of each heavy extra it must not load: every
figure is the median wall time of a fresh interpreter (`python -c ...`), less the bare interpreter's start,
and the ratio says how many `--help`s fit in one import of that extra. Run on an idle machine: the figures
scale with the load; the ratios move much less.

    PYTHONPATH=src python bench/cli_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time

EXTRAS = (
    "inspect_ai",
    "torch",
    "transformers",
    "ray",
    "onnxruntime",
    "vllm",
    "peft",
    "numpy",
    "pyarrow",
    "matplotlib",
    "aiohttp",
    "openai",
)
HELP = "from medsafetybench.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"


def wall(code: str, repeat: int) -> float:
    """Median seconds of `python -c code` over `repeat` fresh interpreters (stdout discarded)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    bare = wall("pass", args.repeat)
    cli_import = wall("import medsafetybench.cli", args.repeat) - bare
    help_time = wall(HELP, args.repeat) - bare
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, medsafetybench.cli\nprint(' '.join(sorted(m for m in {EXTRAS!r} if m in sys.modules)))",
        ],
        capture_output=True,
        text=True,
    )
    print(
        f"python start {bare:.3f} s (subtracted below); medsafety --help {help_time:.3f} s, "
        f"of which importing the CLI {cli_import:.3f} s"
    )
    print(f"extras the CLI import loads: {loaded.stdout.strip() or 'none'}")
    print(f"{'extra':<14}{'import s':>10}{'x --help':>10}")
    for name in EXTRAS:
        if importlib.util.find_spec(name) is None:
            print(f"{name:<14}{'-':>10}{'-':>10}  (not installed)")
            continue
        t = wall(f"import {name}", args.repeat) - bare
        print(f"{name:<14}{t:>10.3f}{t / help_time:>10.1f}")


if __name__ == "__main__":
    main()
