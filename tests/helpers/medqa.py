"""Four toy medical QA rows and a fake-server replier that answers three of them (one invalidly), shared
by the medical QA tests."""

from __future__ import annotations

ROWS = [
    ("Which organ pumps blood?", "heart", "liver", "lung", "skin", "A"),
    ("Which drug is an anticoagulant?", "insulin", "heparin", "saline", "iron", "B"),
    ("Which vitamin prevents scurvy?", "A", "D", "C", "K", "C"),
    ("Which cell carries oxygen?", "neuron", "platelet", "neutrophil", "erythrocyte", "D"),
]


def reply_for(request: dict) -> str:
    text = request["messages"][-1]["content"]
    return {
        "pumps": "The answer is (A).",
        "anticoagulant": "**B**",
        "scurvy": "Answer: b",
        "oxygen": "I'm sorry, I can't answer medical questions.",
    }[next(k for k in ("pumps", "anticoagulant", "scurvy", "oxygen") if k in text)]
