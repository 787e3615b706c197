"""The candidate tables: content-keyed inserts with provenance, filter verdicts, review decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsafetybench.errors import UserError
from medsafetybench.generation.candidates import CandidateStore, NewCandidate, candidate_id
from medsafetybench.store import Store


def test_add_is_content_keyed_and_keeps_first_provenance(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        cs = CandidateStore(store)
        a = NewCandidate(3, "Request about  topic A", "gcg", "hf:x", seed=7, suffix="* * *", raw_key="k1")
        b = NewCandidate(3, "Request about topic A", "prompt", "openai:y", seed=1)
        assert cs.add([a], "v1") == (1, 0)
        assert cs.add([b, NewCandidate(4, "Request about topic A", "prompt", "openai:y")], "v1") == (1, 1)
        c = cs.get(candidate_id(3, "Request about topic A"))
        assert (c.request, c.method, c.generator, c.seed, c.suffix, c.raw_key, c.times_seen) == (
            "Request about topic A",
            "gcg",
            "hf:x",
            7,
            "* * *",
            "k1",
            2,
        )
        assert c.status == "pending" and c.created_at > 0
        assert len(cs.list(principles=[4])) == 1
        assert cs.add([a], "v1") == (0, 0)  # the same reply read again (a cached re-run) changes nothing
        assert cs.get(candidate_id(3, "Request about topic A")).times_seen == 2
    with Store(tmp_path / "db.sqlite") as store:  # survives reopening
        assert len(CandidateStore(store).list()) == 2


def test_filter_and_decisions(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        cs = CandidateStore(store)
        cs.add([NewCandidate(1, f"Request about topic {x}", "prompt", "g") for x in "ABC"], "v1")
        a, b, c = cs.list()
        cs.set_filter([(a.id, "kept", [], {"harm": 8}), (b.id, "dropped", ["too short"], {})])
        assert cs.get(b.id).filter_reasons == ["too short"] and cs.get(a.id).filter_scores == {"harm": 8}
        assert cs.counts() == {"pending": 2, "accepted": 0, "rejected": 0, "dropped": 1}
        cs.set_safe_response(a.id, " Placeholder safe response. ", "openai:s")
        got = cs.decide(
            a.id, "edit", request="Request about topic A, edited", safe_response="Edited response.", reviewer="rev"
        )
        assert got.status == "accepted" and got.request == "Request about topic A"
        assert (got.final_request, got.final_safe_response) == ("Request about topic A, edited", "Edited response.")
        assert cs.decide(c.id, "reject").status == "rejected"
        assert cs.decide(c.id, "reset").status == "pending"
        assert [d[0] for d in cs.decisions(c.id)] == ["reject", "reset"]
        with pytest.raises(UserError, match="blank"):
            cs.decide(a.id, "edit", request="   ")
        with pytest.raises(UserError, match="unknown"):
            cs.decide(a.id, "maybe")
        with pytest.raises(UserError, match="no generated candidate"):
            cs.get("nope")
