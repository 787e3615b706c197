"""The LLM judge: the paper's judge prompt sent to any chat model backend, its score parsed.

Identity is `llm:<model identity>|<prompt version>`, so a different judge model or prompt version is a
different judge whose judgements never mix with this one's. A judge output with no parsable score is
asked again, up to `max_attempts` calls in all (3 by default); if every attempt is unscored the
judgement is kept as unscored with the last raw text. Scores inside text the judge copied from the request
or response are not its own (`parser.parse_judge_output(..., quoted=...)`), and an output that stopped on
the token limit (finish reason `length`, inspect's `max_tokens`) counts as unscored whatever it holds: it is
asked again the same way, then kept unscored with its raw text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..models.base import ChatModel, ChatRequest, GenerationConfig, Usage
from ..models.loading import load_model
from ..models.spec import validate_spec
from .base import JudgeCase, Judgement, JudgementCallback
from .parser import ParsedScore, parse_judge_output
from .prompt import JUDGE_MAX_NEW_TOKENS, JUDGE_SYSTEM_PROMPT, PROMPT_VERSION, build_judge_prompt
from .registry import register_judge

TRUNCATED = frozenset({"length", "max_tokens"})
"""Finish reasons of an output cut at the token limit (OpenAI-compatible servers; inspect)."""


@register_judge("llm")
class LLMJudge:
    """The paper's judge prompt over any `ChatModel`; `--judge MODEL_SPEC` or `--judge llm:MODEL_SPEC`."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset({"max_attempts", "max_new_tokens"})

    @classmethod
    def check_spec(cls, args: str) -> None:
        """The model spec is valid (paths, extras, API key) without loading the model."""
        validate_spec(args)

    @classmethod
    def from_spec(cls, args: str, *, model_options: Mapping[str, Any], **options: Any) -> LLMJudge:
        """Load the model `args` with `model_options` and judge with it."""
        return cls(load_model(args, **model_options), **options)

    def __init__(self, model: ChatModel, *, max_attempts: int = 3, max_new_tokens: int = JUDGE_MAX_NEW_TOKENS) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.model = model
        self.max_attempts = max_attempts
        self.config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0)
        self.identity = f"llm:{model.identity}|{PROMPT_VERSION}"

    def request_for(self, case: JudgeCase) -> ChatRequest:
        return ChatRequest.simple(
            build_judge_prompt(case.request, case.response, case.policy), system=JUDGE_SYSTEM_PROMPT, config=self.config
        )

    async def judge(self, cases: Sequence[JudgeCase], on_result: JudgementCallback | None = None) -> list[Judgement]:
        results: list[Judgement | None] = [None] * len(cases)
        usage = [Usage() for _ in cases]
        pending = list(range(len(cases)))
        for attempt in range(1, self.max_attempts + 1):
            if not pending:
                break
            requests = [self.request_for(cases[i]) for i in pending]
            retry: list[int] = []
            last_round = attempt == self.max_attempts

            def settle(
                k: int, completion, *, pending=pending, retry=retry, last_round=last_round, attempt=attempt
            ) -> None:
                i = pending[k]
                usage[i] = usage[i] + completion.usage
                if not completion.ok:
                    # The service could not be reached even after the backend's retries: not a judgement.
                    results[i] = Judgement(None, raw="", attempts=attempt, usage=usage[i], error=completion.error)
                    if on_result:
                        on_result(i, results[i])
                    return
                if completion.finish_reason in TRUNCATED:  # cut mid-sentence: whatever it holds is no verdict
                    parsed = ParsedScore(
                        None,
                        "",
                        f"the judge's output stopped at its token limit ({self.config.max_new_tokens} new tokens)",
                    )
                else:
                    case = cases[i]
                    parsed = parse_judge_output(completion.text, quoted=(case.request, case.response))
                if parsed.score is None and not last_round:
                    retry.append(i)
                    return
                results[i] = Judgement(
                    parsed.score,
                    reason=parsed.reason if parsed.score else (parsed.problem or ""),
                    raw=completion.text,
                    attempts=attempt,
                    usage=usage[i],
                    metadata={"batch": completion.batch} if completion.batch else {},
                )
                if on_result:
                    on_result(i, results[i])

            await self.model.generate(requests, on_result=settle)
            pending = sorted(retry)
        return [r if r is not None else Judgement(None, error="no result") for r in results]

    async def aclose(self) -> None:
        await self.model.aclose()
