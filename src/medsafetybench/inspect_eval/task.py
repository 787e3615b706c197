"""The `medsafety` inspect task: MedSafetyBench items as inspect samples, solved with the paper's system
prompt and generation settings, scored by one of our judges."""

from __future__ import annotations

from ..errors import require

inspect_ai = require("inspect_ai", "inspect", "The inspect_ai task")

from inspect_ai import Task, task  # noqa: E402
from inspect_ai.dataset import MemoryDataset, Sample  # noqa: E402
from inspect_ai.model import ChatMessageSystem, GenerateConfig  # noqa: E402
from inspect_ai.solver import Generate, TaskState, generate, solver  # noqa: E402

from ..data.schema import Item  # noqa: E402
from ..evaluation.tasks import ItemSelection  # noqa: E402
from ..principles import LLAMA2_DEFAULT_SYSTEM_PROMPT, parse_principles  # noqa: E402
from .scorer import medsafety_scorer  # noqa: E402

TASK_VERSION = 1


def item_sample(item: Item) -> Sample:
    """One item as an inspect sample: the request is the input, the reference safe response the target,
    and id, principle, source, split and policy go in the metadata."""
    return Sample(
        input=item.request,
        target=item.safe_response or "",
        id=item.id,
        metadata={
            "principle": item.principle if item.principle is not None else 0,
            "source": item.source,
            "split": item.split,
            "policy": item.policy,
            "safe_response": item.safe_response,
        },
    )


@solver
def verbatim_system_prompt(text: str):  # noqa: ANN201 - an inspect solver
    """Put `text` first as the system message, exactly (inspect's `system_message` formats `{...}` fields)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        state.messages.insert(0, ChatMessageSystem(content=text))
        return state

    return solve


def _csv(value: str | int | None) -> tuple[str, ...] | None:
    if value is None or value == "":
        return None
    return tuple(t.strip() for t in str(value).split(",") if t.strip())


@task(version=TASK_VERSION)
def medsafety(
    split: str = "eval",
    principle: str | int | None = None,
    source: str | None = None,
    sample: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    input: str | None = None,
    data: str | None = None,
    judge: str = "offline",
    system_prompt: str | None = None,
    max_tokens: int = 512,
    judge_args: str | dict | list | None = None,
) -> Task:
    """MedSafetyBench: harmful medical requests, answered greedily under the Llama-2 default system prompt,
    judged on the paper's 1-5 harmfulness scale (lower is safer).

    Args:
        split: eval (MedSafety-Eval), improve, extra or sample (the bundled 25 requests).
        principle: AMA principles, e.g. 3 or "1,4" or "2-5".
        source: gpt4, llama2, llama3 (comma list).
        sample: draw this many items, stratified by principle and source.
        seed: seed of the sample.
        limit: keep the first N items by id.
        input: a file of your own requests (CSV, JSONL, Alpaca JSON) instead of the benchmark.
        data: local copy of the official release (else $MEDSAFETYBENCH_DATA, else download).
        judge: `offline`, any medsafetybench judge spec (`openai:gpt-3.5-turbo-0125`, `hf:PATH`, ...), or
            `inspect:<model>` for the paper's judge prompt through an inspect model.
        judge_args: arguments of an `inspect:<model>` judge's model: `base_url`, `api_key` and inspect model
            args, as a mapping, a JSON object or `key=value,...`; e.g. `{base_url: http://host/v1,
            responses_api: false}` for an OpenAI-compatible server that is not OpenAI.
        system_prompt: system prompt (default: the Llama-2 default, as in the paper; "none" for none).
        max_tokens: new tokens per response (paper: 512).
    """
    items = ItemSelection(
        split,
        _csv(source),
        parse_principles(str(principle)) if principle not in (None, "") else None,
        int(sample) if sample else None,
        int(seed),
        int(limit) if limit else None,
        input,
        data,
    ).load()
    if system_prompt is None:
        system_prompt = LLAMA2_DEFAULT_SYSTEM_PROMPT
    elif system_prompt.strip().lower() in ("", "none"):
        system_prompt = None
    solver = ([verbatim_system_prompt(system_prompt)] if system_prompt else []) + [generate()]
    return Task(
        dataset=MemoryDataset([item_sample(it) for it in items], name=f"medsafetybench-{split}"),
        solver=solver,
        scorer=medsafety_scorer(judge, judge_args),
        config=GenerateConfig(temperature=0.0, max_tokens=int(max_tokens)),
        metadata={"medsafetybench_split": split, "system_prompt": system_prompt},
    )
