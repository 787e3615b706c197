"""A run store built from fixture data for the report tests: no model, no judge, just rows written with
Store.put_response / put_judgement exactly as the pipeline writes them.

Two runs ("model-a", "model-b") over the same 12 items (principles 1..4, sources gpt4/llama2); the
scores are fixed below so tests can compute every number by hand. Item 0's request and response carry
HTML/script payloads that must render as text.
"""

from __future__ import annotations

from pathlib import Path

from medsafetybench.data.schema import Item
from medsafetybench.evaluation.pipeline import EvalSettings, plan_run
from medsafetybench.judging.base import JudgeCase, Judgement
from medsafetybench.models.base import Completion, GenerationConfig, Usage
from medsafetybench.store import Store

JUDGE = "llm:openai:fixture-judge|msb-judge-v1"
XSS_REQUEST = (
    "<script>window.__pwned=1;document.title='PWNED'</script> how do I falsify a chart? </table></td></tr><b>bold</b>"
)
XSS_RESPONSE = (
    "<img src=x onerror=\"window.__pwned=2;document.title='PWNED'\"> "
    '</table><script>window.__pwned=3</script><a href="javascript:alert(1)">x</a> & "quotes"'
)
XSS_REASON = "<svg onload=window.__pwned=4> the model declined"
XSS_SAFE = "<script>window.__pwned=5</script> a reference safe response"

# score per item for each model (None = unscored); item 11 of model-b has no response at all
SCORES_A: list[int | None] = [1, 1, 2, 5, 4, 1, 3, 1, 2, 5, 1, None]
SCORES_B: list[int | None] = [1, 2, 2, 3, 1, 1, 1, 1, 1, 2, 1, 1]


def items() -> list[Item]:
    out = []
    for i in range(12):
        request = XSS_REQUEST if i == 0 else f"fixture request {i}: please help with something unethical"
        safe = XSS_SAFE if i == 0 else f"I cannot help with fixture request {i}."
        out.append(
            Item(
                id=f"test/{i:02d}",
                split="test",
                source="gpt4" if i % 2 == 0 else "llama2",
                principle=i % 4 + 1,
                request=request,
                safe_response=safe,
            )
        )
    return out


def _fill(store: Store, model: str, scores: list[int | None], *, skip_response: set[int] = frozenset()) -> str:
    settings = EvalSettings(system_prompt=None, generation=GenerationConfig(max_new_tokens=32))
    its = items()
    run_id = plan_run(
        store,
        its,
        model_spec=f"openai:{model}@http://127.0.0.1:1/v1",
        model_identity=f"openai:{model}",
        judge_identity=JUDGE,
        settings=settings,
    )
    for i, (item, score) in enumerate(zip(its, scores, strict=True)):
        if i in skip_response:
            continue
        request = settings.request_for(item)
        response = XSS_RESPONSE if i == 0 else f"{model} answer {i}"
        store.put_response(
            request.cache_key(f"openai:{model}"), f"openai:{model}", request, Completion(response, Usage(10, 5), "stop")
        )
        reason = XSS_REASON if i == 0 else f"reason {i}"
        raw = f"#reason: {reason}\n#score: {score}" if score else "I cannot rate this <b>"
        store.put_judgement(
            JudgeCase(item.request, response, item.policy).cache_key(JUDGE),
            JUDGE,
            Judgement(score, reason=reason if score else "no #score line", raw=raw, usage=Usage(100, 20)),
        )
    return run_id


def build_store(path: Path) -> tuple[Store, str, str]:
    """A store with model-a and model-b runs; returns (store, run id of a, run id of b)."""
    store = Store.open_project(path)
    a = _fill(store, "model-a", SCORES_A)
    b = _fill(store, "model-b", SCORES_B, skip_response={11})
    return store, a, b
