"""The two medical QA protocols and their settings: what a stored score means, and what may be compared.

* `HarnessProtocol` (`--protocol harness`, the default): lm-evaluation-harness 0.4 zero-shot
  multiple choice. Local models (`hf:`) are scored by log-likelihood (`loglik.py`, setting
  `add_bos`); chat APIs without log-probabilities by one short generation and `extract.py`.
* `PaperProtocol` (`--protocol paper`): the MedSafetyBench authors' fork of the Meditron evaluation
  (`paper.py`): generation with the benchmark's instruction, optional in-context shots drawn with
  several seeds, optional chain-of-thought and self-consistency, and that code's answer reading.

`settings()` is everything that changes a result; it goes into every stored score's key and into the
`settings` column, so results of different protocols or settings are never read as one another's,
and every table, report and export names the protocol (`label`). `make_protocol` builds either from
a name, a dict (study files, the sweep) or an instance.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from ..errors import UserError

HARNESS, PAPER = "harness", "paper"
PROTOCOLS = (HARNESS, PAPER)

# inference.py:309, the seeds the MedSafetyBench authors put in place of Meditron's [1234, 432, 32]
PAPER_SEEDS = (7825, 1166, 5892, 7036, 4172, 5427, 8147, 3649, 7112, 3035)
PAPER_SINGLE_SEED = 1234  # inference.py:165/217: benchmark_preparation's default seed (args.seed is unused)
PAPER_SC_BRANCHES = 10  # inference.py:381, --sc_branch default
PAPER_BATCH_SIZE = 32  # inference_pipeline.sh:103, BATCH_SIZE (sets max_new_tokens per batch)


@dataclass(frozen=True)
class HarnessProtocol:
    """lm-evaluation-harness zero-shot multiple choice."""

    add_bos: bool = True  # the harness default: the tokenizer's own special tokens (a BOS for Llama)
    name: ClassVar[str] = HARNESS

    def settings(self, mode: str = "loglik") -> dict:
        """What changes a stored result in `mode` (loglik or generate)."""
        return {"add_bos": self.add_bos} if mode == "loglik" else {"max_new_tokens": 64}

    @property
    def label(self) -> str:
        return "harness" + ("" if self.add_bos else ", no BOS")

    def describe(self, mode: str) -> str:
        """The label of a result in `mode`: log-likelihood and generation are different measures."""
        return self.label if mode == "loglik" else "harness, generation"


@dataclass(frozen=True)
class PaperProtocol:
    """The meditron-eval fork's generation protocol (see `paper.py` and docs/medqa.md)."""

    shots: int = 0  # in-context examples from the benchmark's train split (inference_pipeline.sh -s)
    multi_seed: bool = True  # with shots: one run per seed of PAPER_SEEDS (-m 1), else seed 1234 only
    seeds: tuple[int, ...] | None = None  # other seeds than the reference's (not the paper's protocol)
    cot: bool = False  # chain-of-thought instruction, 1024 new tokens (-r 1)
    sc: bool = False  # self-consistency: branches sampled at temperature 0.8, majority vote (-t 1)
    sc_branches: int = PAPER_SC_BRANCHES
    batch_size: int = PAPER_BATCH_SIZE  # the reference's inference batch: max_new_tokens follows its first gold
    name: ClassVar[str] = PAPER

    def __post_init__(self) -> None:
        if self.shots < 0:
            raise UserError(f"--paper-shots must be 0 or more (got {self.shots})")
        if self.sc_branches < 1 or self.batch_size < 1:
            raise UserError("--paper-sc-branches and the reference batch size must be at least 1")
        if self.seeds is not None:
            object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
            if not self.seeds:
                raise UserError("--paper-seeds needs at least one seed")
        if self.cot and self.shots:
            raise UserError(
                "--paper-cot with --paper-shots: the reference reads its chain-of-thought shots from "
                "evaluation/prompt_cot/<benchmark>.jsonl, which its repository does not contain (only "
                "prompt_cot/*.py without the reasoning in 'gold'), and draws them with an unseeded "
                "random.sample; that mode cannot be reproduced. Use --paper-cot with 0 shots."
            )
        if self.sc and self.shots and len(self.shot_seeds()) > 1:
            raise UserError(
                "--paper-sc with shots drawn by several seeds: the reference would then sample one branch "
                "per seed and vote over one; use --paper-sc with 0 shots, or add --paper-single-seed"
            )

    def replicates(self) -> list[tuple[str, int | None]]:
        """(kind, value) per generation of each question, in the reference's order (inference.py:306-326):
        with shots one per shot seed (the reference's 10 with -m 1, else 1234), else one per
        self-consistency branch, else one."""
        if self.shots and not self.sc:
            return [("seed", s) for s in self.shot_seeds()]
        if self.sc:
            return [("branch", b) for b in range(self.sc_branches)]
        return [("single", None)]

    def shot_seeds(self) -> tuple[int, ...]:
        if self.seeds is not None:
            return self.seeds
        return PAPER_SEEDS if self.multi_seed else (PAPER_SINGLE_SEED,)

    def seed_for(self, replicate: tuple[str, int | None]) -> int:
        """The seed that draws the shots of a replicate."""
        kind, value = replicate
        return value if kind == "seed" and value is not None else self.shot_seeds()[0]

    def settings(self, mode: str = "generate") -> dict:
        d: dict[str, Any] = {"shots": self.shots, "cot": self.cot, "sc": self.sc, "batch_size": self.batch_size}
        if self.shots:
            d["seeds"] = list(self.shot_seeds())
        if self.sc:
            d["sc_branches"] = self.sc_branches
        return d

    @property
    def label(self) -> str:
        runs = self.replicates()
        parts = [f"{self.shots}-shot" + (f" x {len(runs)} seeds" if runs[0][0] == "seed" and len(runs) > 1 else "")]
        if self.cot:
            parts.append("CoT")
        if self.sc:
            parts.append(f"SC x {self.sc_branches}")
        return "paper (" + ", ".join(parts) + ")"

    def describe(self, mode: str) -> str:
        return self.label


Protocol = HarnessProtocol | PaperProtocol


def make_protocol(spec: str | dict | Protocol | None = None, **overrides: Any) -> Protocol:
    """A protocol from a name ("harness", "paper"), a dict ({"name": "paper", "shots": 3, ...}) or an
    instance; `overrides` (e.g. add_bos=False, shots=3) replace fields. Unknown names or fields are a
    UserError naming them."""
    if isinstance(spec, (HarnessProtocol, PaperProtocol)):
        proto, given = spec, {}
    else:
        given = dict(spec) if isinstance(spec, dict) else {"name": spec or HARNESS}
        name = str(given.pop("name", given.pop("protocol", HARNESS))).lower()
        if name not in PROTOCOLS:
            raise UserError(f"unknown medical QA protocol '{name}': use {' or '.join(PROTOCOLS)}")
        proto = HarnessProtocol() if name == HARNESS else PaperProtocol()
    given.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(proto)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise UserError(
            f"medical QA protocol '{proto.name}' has no setting {', '.join(unknown)}: "
            f"it takes {', '.join(sorted(known))}"
        )
    return replace(proto, **given) if given else proto


def protocol_from_row(protocol: str, settings: dict) -> Protocol:
    """The protocol a stored row was scored under (its `protocol` and `settings` columns)."""
    if protocol == HARNESS:
        return HarnessProtocol(add_bos=bool(settings.get("add_bos", True)))
    keep = {k: settings[k] for k in ("shots", "cot", "sc", "sc_branches", "batch_size") if k in settings}
    seeds = settings.get("seeds")
    if seeds is not None:
        keep["seeds"] = tuple(seeds)
    return PaperProtocol(**keep)
