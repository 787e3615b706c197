"""Growing the benchmark: new harmful medical requests with safe responses, the way the paper built it.

    methods.py     LLM prompting (GPT-4 method), forced "Sure" replies (Llama-3 method), safe responses,
                   the 0-10 harmfulness scorer; every call cached in the store
    gcg.py         our GCG (Zou et al. 2023) on a local transformers model
    extract.py     numbered / bulleted list items out of a generator's reply
    filter.py      length, language, exact and near duplicates (MiniLM), harmfulness pre-screen
    candidates.py  the candidates and their provenance and review decisions (store tables)
    review.py      the local, keyboard-driven review page
    export.py      accepted items in the official CSV layout and as Alpaca JSON
    cli.py         `medsafety generate ...`

No generated item leaves the store before a person has accepted it in review.
"""

from __future__ import annotations

from .candidates import Candidate, CandidateStore, NewCandidate, candidate_id
from .extract import extract_items
from .prompts import PROMPTS_VERSION, parse_harm_score

__all__ = ["Candidate", "CandidateStore", "NewCandidate", "PROMPTS_VERSION", "candidate_id", "extract_items",
           "parse_harm_score"]
