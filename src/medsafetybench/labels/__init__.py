"""Human labels: a person is a judge too (identity `human:<labeller>`).

- `sample`: the stratified random sample of a run's items that people label, stored with its design;
  writing labels as judgements.
- `importer`: labels made elsewhere (CSV / JSONL with item_id and score).
- `page`: the local labelling web page.
- `cli`: `medsafety label`.
- `report`: the console block and HTML report section with agreement and judge-corrected scores
  (the statistics themselves are in `medsafetybench.labels.calibration`).
"""

from .sample import (
    HUMAN_PREFIX,
    LabelSample,
    draw_sample,
    human_identity,
    put_labels,
    run_samples,
    sample_for,
)

__all__ = ["HUMAN_PREFIX", "LabelSample", "draw_sample", "human_identity", "put_labels", "run_samples",
           "sample_for"]
