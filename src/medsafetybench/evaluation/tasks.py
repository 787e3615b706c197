"""Which items an evaluation asks, and under which settings: `ItemSelection` names a set of benchmark
items (split, sources, principles, a seeded stratified sample, a limit, or a user file) and loads it;
`settings_from` builds the prompt/generation settings. A study file or the `eval` command declares
an evaluation as these two values plus model and judge specs (`study.spec.Study`). Runs themselves are keyed by
content (model identity, settings digest,
item-set digest), so two ways of asking for the same items find the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import load_items
from ..data.schema import Item
from ..errors import UserError
from ..models.base import GenerationConfig
from ..models.paper_formats import paper_system_prompt
from ..principles import LLAMA2_DEFAULT_SYSTEM_PROMPT
from .pipeline import EvalSettings


@dataclass(frozen=True)
class ItemSelection:
    """Which benchmark items to ask."""

    split: str = "eval"
    """eval (MedSafety-Eval), improve (MedSafety-Improve), extra (Llama-3 requests) or sample (bundled)."""
    sources: tuple[str, ...] | None = None
    """gpt4, llama2, llama3; None for all."""
    principles: tuple[int, ...] | None = None
    """AMA principles 1-9; None for all."""
    sample: int | None = None
    """Draw this many items, stratified by principle and source (`data.sampling`)."""
    seed: int = 0
    """Seed of the sample."""
    limit: int | None = None
    """Keep the first N items (by id) after sampling."""
    input_file: str | None = None
    """A user file of requests instead of the benchmark."""
    data_dir: str | None = None
    """Local copy of the official release (not part of what is asked: where to read it)."""
    verify: bool = True
    """Check the official files against the release manifest (`--no-verify` turns it off; not part of
    what is asked either)."""

    def load(self) -> list[Item]:
        items = load_items(
            split=self.split,
            sources=self.sources,
            principles=self.principles,
            data_dir=self.data_dir,
            user_file=self.input_file,
            limit=self.limit,
            sample=self.sample,
            seed=self.seed,
            verify=self.verify,
        )
        if not items:
            raise UserError("no items match the chosen split/sources/principles")
        return items

    def describe(self) -> str:
        """A short human description, e.g. `eval, gpt4, principles 1,4, sample 100 (seed 0)`."""
        parts = [f"file {Path(self.input_file).name}" if self.input_file else self.split]
        if self.sources:
            parts.append(",".join(self.sources))
        if self.principles:
            parts.append("principles " + ",".join(map(str, self.principles)))
        if self.sample:
            parts.append(f"sample {self.sample} (seed {self.seed})")
        if self.limit:
            parts.append(f"first {self.limit}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "split": self.split,
            "sources": list(self.sources) if self.sources else None,
            "principles": list(self.principles) if self.principles else None,
            "sample": self.sample,
            "seed": self.seed,
            "limit": self.limit,
            "input_file": self.input_file,
        }


def settings_from(
    system_prompt: str | None, max_new_tokens: int = 512, prompt_format: str | None = None
) -> EvalSettings:
    """Settings from what a user types: no system prompt given -> the system text the paper used with
    `prompt_format` when it is a (resolved) paper-* format, else the Llama-2 default (as in the paper);
    `none` or empty -> no system prompt."""
    if system_prompt is None:
        system_prompt = paper_system_prompt(prompt_format or "") or LLAMA2_DEFAULT_SYSTEM_PROMPT
    elif system_prompt.strip().lower() in ("", "none"):
        system_prompt = None
    return EvalSettings(system_prompt=system_prompt, generation=GenerationConfig(max_new_tokens=max_new_tokens))


__all__ = ["ItemSelection", "settings_from"]
