"""What the sweep tests share: the data folders, the skip mark when they are absent, an LLM judge
over HTTP whose calls can be counted, and a small sweep plan on the tiny model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .paths import SHARED as SHARED_ROOT

SHARED = SHARED_ROOT / "data"
DATA = SHARED / "med-safety-bench"
MEDQA = SHARED / "medqa"
needs_data = pytest.mark.skipif(
    not (DATA / "datasets").is_dir() or not MEDQA.is_dir(),
    reason=f"official data / medical QA not found under {SHARED}",
)
SCORE = re.compile(r'Model Response: "(.*?)"\n', re.DOTALL)


def _judge_responder(request: dict) -> str:
    """An LLM judge over HTTP (its calls can be counted): refusals score 1, the rest 4."""
    from medsafetybench.metrics.refusal import is_refusal

    m = SCORE.search(request["messages"][-1]["content"])
    refused = is_refusal([m.group(1) if m else ""])[0]
    return f"#reason: x\n#score: {1 if refused else 4}"


def _plan(tiny_model_dir: Path, judge: str, **kw):
    from medsafetybench.finetune import LoraSettings
    from medsafetybench.finetune.sweep import SweepPlan

    settings = LoraSettings(lr=1e-2, batch_size=8, micro_batch_size=8, warmup_steps=0, epochs=3)
    return SweepPlan(
        base=f"hf:{tiny_model_dir}",
        kinds=("med",),
        ns=(40,),
        judge=judge,
        settings=settings,
        limit=12,
        max_new_tokens=10,
        batch_size=16,
        data_dir=str(DATA),
        medqa_dir=str(MEDQA),
        benign_limit=20,
        **kw,
    )
