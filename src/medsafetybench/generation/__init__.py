"""Growing the benchmark: new harmful medical requests with safe responses, the way the paper built it.

    prompts.py     prompts versions: msb-gen-v2 (the official code's, the default) and msb-gen-v1
    prompts_official.py  the official code's texts, goals, settings, extraction rule and score parser
    methods.py     LLM prompting (GPT-4 method), safe responses, the 0-10 harmfulness scorer; every
                   call cached in the store
    prefill.py     forced-start replies on local models (the Llama-3 "Sure!" method, the local pre-screen)
    gcg.py         our GCG (Zou et al. 2023) on a local transformers model
    gcg_runs.py    GCG runs in the store: keys, checkpoints and resuming, listing, candidates from a run
    extract.py     numbered / bulleted list items out of a generator's reply (v1's extractor)
    filter.py      length, language, exact and near duplicates (MiniLM), harmfulness pre-screen
    candidates.py  the candidates and their provenance and review decisions (store tables)
    review.py      the local review page (buttons and keys)
    export.py      accepted items in the official CSV layout and as Alpaca JSON
    cli.py, cli_gcg.py  `medsafety generate ...`

No generated item leaves the store before a person has accepted it in review.
"""

from __future__ import annotations

from .._lazy import lazy_exports as _lazy_exports

# loaded on first use (see _lazy.py): importing the package stays light
_EXPORTS = {
    "Candidate": ".candidates",
    "CandidateStore": ".candidates",
    "NewCandidate": ".candidates",
    "candidate_id": ".candidates",
    "extract_items": ".extract",
    "DEFAULT_VERSION": ".prompts",
    "PROMPTS_VERSION": ".prompts",
    "VERSIONS": ".prompts",
    "parse_harm_score": ".prompts",
    "prompt_set": ".prompts",
}

__all__ = [
    "DEFAULT_VERSION",
    "VERSIONS",
    "Candidate",
    "CandidateStore",
    "NewCandidate",
    "PROMPTS_VERSION",
    "candidate_id",
    "extract_items",
    "parse_harm_score",
    "prompt_set",
]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
