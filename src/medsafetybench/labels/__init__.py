"""Human labels: a person is a judge too (identity `human:<labeller>`).

- `sample`: the stratified random sample of a run's items that people label, stored with its design;
  writing labels as judgements.
- `importer`: labels made elsewhere (CSV / JSONL with item_id and score).
- `page`: the local labelling web page.
- `cli`: `medsafety label`.
- `report`: the console block and HTML report section with agreement and judge-corrected scores
  (the statistics themselves are in `medsafetybench.labels.calibration`).
"""

from .._lazy import lazy_exports as _lazy_exports

# loaded on first use (see _lazy.py): importing the package stays light
_EXPORTS = {
    "HUMAN_PREFIX": ".sample",
    "LabelSample": ".sample",
    "draw_sample": ".sample",
    "human_identity": ".sample",
    "put_labels": ".sample",
    "run_samples": ".sample",
    "sample_for": ".sample",
}

__all__ = ["HUMAN_PREFIX", "LabelSample", "draw_sample", "human_identity", "put_labels", "run_samples", "sample_for"]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
