"""The offline judges: judges that need no service, each version a module with its weights file and
the fingerprints of the rows it was trained on, so stored judgements keep their meaning forever.

- `v1`: embeddings + logistic regression (`offline_judge.json`, `offline_judge_v1.fingerprints`).
- `v2`: a MiniLM cross-encoder with LoRA on its top layer (`offline_judge_v2.safetensors`); retired from
  spec strings (`registry.RETIRED`), its stored judgements still read.
- `v3`: frozen MiniLM pooled features + refusal/lexical features + a small MLP
  (`offline_judge_v3.safetensors`); the default, `offline`.
- `common`: the shared p(harmful) -> 1-5 judgement map and batch loop (`OfflineJudgeSpec`).
- `weightfile`, `fingerprints`: reading and writing the weights files and training fingerprints.

Which version the name `offline` means is stated once, in `judging.registry.JUDGES`. Training code is
not here: it lives in the repository's `lab/` (not shipped).
"""
