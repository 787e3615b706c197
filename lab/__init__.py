"""The judge lab: training the offline judges, building their training sets, and accuracy studies.

Not part of the `medsafetybench` wheel: nothing the toolkit runs imports this package. Run its
scripts from the repository root as modules, e.g. `python -m lab.train_offline_judge_v3 --data
../shared/data` or `python -m lab.offline_judge_agreement`; they import the installed `medsafetybench`.

- `trainsets`: readers of the public labelled response sets under `judge-train/` and `judge-dev/`.
- `offline_train`, `offline_v3_train`: the offline judges' trainers and the held-out protocol.
- `train_offline_judge_v1/_v2/_v3`: the scripts that wrote each shipped weights file.
- `offline_judge_agreement`, `refusal_agreement`: accuracy benches of the offline judges and the
  refusal detectors.
- `labels_demo`, `ppi_reference`: the judge-corrected estimate's coverage study and its reference.
"""
