"""Print ppi-python's PPI mean estimates and intervals for the fixed inputs of tests/labels/test_calibration.py.

The reference values in that test come from this script, run where ppi-python 0.2.3 is installed (its
dependencies, numba, statsmodels, pandas and scikit-learn, are too heavy for our dev extra):

    python -m venv /tmp/ppivenv && /tmp/ppivenv/bin/pip install ppi-python==0.2.3
    /tmp/ppivenv/bin/python tools/ppi_reference.py
"""

import numpy as np
from ppi_py import ppi_mean_ci, ppi_mean_pointestimate


def inputs():
    rng = np.random.default_rng(2023)
    y_all = rng.integers(1, 6, size=300).astype(float)
    f_all = np.clip(y_all + rng.choice([0, 0, 1, 1, 2, -1], size=300), 1, 5)
    lab = rng.choice(300, size=40, replace=False)
    return y_all[lab], f_all[lab], f_all


if __name__ == "__main__":
    y, f, fa = inputs()
    for lam in (1.0, 0.5, 0.0, None):  # None: ppi-python tunes lambda (PPI++)
        est = float(np.asarray(ppi_mean_pointestimate(y, f, fa, lam=lam)).ravel()[0])
        low, high = ppi_mean_ci(y, f, fa, alpha=0.05, lam=lam)
        print(f"lam={lam}: ({est!r}, {float(low[0])!r}, {float(high[0])!r})")
