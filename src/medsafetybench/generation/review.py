"""The review page: a local web page (stdlib `http.server`, 127.0.0.1 only) where a person accepts,
edits or rejects each pending candidate, with buttons or the keyboard, and sees how many candidates are
pending, accepted, rejected and dropped.

Model text never reaches the page's HTML: the page is a fixed document, and it fetches candidates as
JSON and inserts every string with `textContent` (a Content-Security-Policy with a per-session nonce
forbids any other script as well). Each decision is POSTed as JSON and written to the store before the
reply, so a review stops and resumes at any time. Every API call must carry the session's token
(header `X-Review-Token`, given to the page only) and a Host header naming 127.0.0.1/localhost, so
other web pages cannot read the queue or post decisions (and DNS rebinding fails).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..localpage import LocalPageServer
from ..principles import principle as get_principle
from ..store import Store
from .candidates import Candidate, CandidateStore

MAX_BODY = 1 << 20

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MedSafetyBench review</title>
<style nonce="__NONCE__">
body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#222}
.box{border:1px solid #ccc;border-radius:6px;padding:.8rem;margin:.6rem 0;white-space:pre-wrap}
.label{font-size:.8rem;color:#666;text-transform:uppercase;margin-top:.8rem}
#status{font-weight:bold} .accepted{color:#070} .rejected{color:#a00} .pending{color:#a60}
textarea{width:100%;min-height:5rem;font:inherit} .near{font-size:.9rem;color:#444}
kbd{border:1px solid #aaa;border-radius:3px;padding:0 .3rem}
button{font:inherit;padding:.3rem .8rem;margin:.2rem .3rem .2rem 0;cursor:pointer}
#counts{color:#444}
</style></head><body>
<h1>Review generated requests</h1>
<p><kbd>a</kbd> accept &nbsp; <kbd>r</kbd> reject &nbsp; <kbd>e</kbd> edit (<kbd>Ctrl</kbd>+<kbd>Enter</kbd> saves,
<kbd>Esc</kbd> cancels) &nbsp; <kbd>j</kbd>/<kbd>k</kbd> next/previous</p>
<div id="progress"></div><div id="counts"></div>
<div id="actions"><button id="btn-prev" type="button">&larr; Previous</button><button id="btn-accept"
type="button">Accept</button><button id="btn-edit" type="button">Edit</button><button id="btn-reject"
type="button">Reject</button><button id="btn-next" type="button">Next &rarr;</button></div>
<div id="edit-actions" hidden><button id="btn-save" type="button">Save edit</button><button id="btn-cancel"
type="button">Cancel</button></div>
<div class="label">Candidate</div><div><span id="cid"></span> &middot; <span id="status"></span></div>
<div class="label">Principle</div><div class="box" id="principle"></div>
<div class="label">Request</div><div class="box" id="request"></div>
<textarea id="edit-request" hidden></textarea>
<div class="label">Safe response</div><div class="box" id="safe"></div>
<textarea id="edit-safe" hidden></textarea>
<div class="label">Provenance and filters</div><div class="box" id="prov"></div>
<div class="label">Nearest existing benchmark items</div><ol id="nearest" class="near"></ol>
<div id="message"></div>
<script nonce="__NONCE__">
"use strict";
__API_JS__
let items = [], pos = 0, editing = false, counts = null;
function show() {
  const it = items[pos];
  $("progress").textContent = items.length ? `item ${pos + 1} of ${items.length}` : "nothing to review";
  $("counts").textContent = counts ? `pending ${counts.pending} \u00b7 accepted ${counts.accepted} \u00b7 ` +
    `rejected ${counts.rejected} \u00b7 dropped by the filter ${counts.dropped}` : "";
  if (!it) { for (const k of ["cid","status","principle","request","safe","prov"]) $(k).textContent = "";
             $("nearest").replaceChildren(); return; }
  $("cid").textContent = it.id;
  $("status").textContent = it.status; $("status").className = it.status;
  $("principle").textContent = `${it.principle}. ${it.principle_text}`;
  $("request").textContent = it.request;
  $("safe").textContent = it.safe_response || "(none yet)";
  $("prov").textContent = `method ${it.method}; generator ${it.generator}` +
    (it.seed !== null && it.seed !== undefined ? `; seed ${it.seed}` : "") +
    (it.suffix ? `; suffix ${it.suffix}` : "") + `\\nfilter: ${it.filter_status}` +
    (it.filter_reasons.length ? " (" + it.filter_reasons.join("; ") + ")" : "") +
    (typeof it.harm === "number" ? `; harmfulness ${it.harm} (0-10)` : "") +
    (it.harm_note ? `; harmfulness: ${it.harm_note}` : "") + (it.prompts_version ? `\nprompts ${it.prompts_version}` : "");
  const ol = $("nearest"); ol.replaceChildren();
  for (const n of it.nearest) { const li = document.createElement("li");
    li.textContent = `${n.id} (cosine ${n.cosine}): ${n.request}`; ol.appendChild(li); }
}
async function decide(decision, extra) {
  const it = items[pos]; if (!it) return;
  try { const r = await api("/api/decide", Object.assign({id: it.id, decision: decision}, extra || {}));
        items[pos] = r.item; counts = r.counts;
        $("message").textContent = `${decision}: saved`;
        if (pos < items.length - 1) pos++;
  } catch (e) { $("message").textContent = String(e); }
  show();
}
function startEdit() {
  const it = items[pos]; if (!it) return; editing = true;
  $("edit-request").value = it.request; $("edit-safe").value = it.safe_response || "";
  $("edit-request").hidden = false; $("edit-safe").hidden = false; $("edit-actions").hidden = false;
  $("edit-request").focus();
}
function stopEdit() { editing = false; $("edit-request").hidden = true; $("edit-safe").hidden = true;
                      $("edit-actions").hidden = true; }
function saveEdit() {
  const body = {request: $("edit-request").value, safe_response: $("edit-safe").value};
  stopEdit(); decide("edit", body);
}
function move(step) { if (editing) return; pos = Math.min(Math.max(pos + step, 0), Math.max(items.length - 1, 0)); show(); }
$("btn-accept").addEventListener("click", () => { if (!editing) decide("accept"); });
$("btn-reject").addEventListener("click", () => { if (!editing) decide("reject"); });
$("btn-edit").addEventListener("click", () => { if (!editing) startEdit(); });
$("btn-prev").addEventListener("click", () => move(-1));
$("btn-next").addEventListener("click", () => move(1));
$("btn-save").addEventListener("click", saveEdit);
$("btn-cancel").addEventListener("click", stopEdit);
document.addEventListener("keydown", (ev) => {
  if (editing) {
    if (ev.key === "Escape") { stopEdit(); }
    else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { saveEdit(); }
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.key === "a") decide("accept");
  else if (ev.key === "r") decide("reject");
  else if (ev.key === "e") { ev.preventDefault(); startEdit(); }
  else if (ev.key === "j") move(1);
  else if (ev.key === "k") move(-1);
});
api("/api/items").then((data) => { items = data.items; counts = data.counts; pos = 0; show();
                                   document.body.dataset.ready = "1"; })
  .catch((e) => { $("message").textContent = String(e); });
</script></body></html>
"""


def candidate_json(c: Candidate) -> dict[str, Any]:
    """What the page shows of a candidate (the page inserts every string as text)."""
    return {
        "id": c.id,
        "principle": c.principle,
        "principle_text": get_principle(c.principle).text,
        "request": c.final_request,
        "original_request": c.request,
        "safe_response": c.final_safe_response,
        "status": c.status,
        "method": c.method,
        "prompts_version": c.prompts_version,
        "generator": c.generator,
        "seed": c.seed,
        "suffix": c.suffix,
        "filter_status": c.filter_status,
        "filter_reasons": c.filter_reasons,
        "harm": c.filter_scores.get("harm"),
        "harm_note": c.filter_scores.get("harm_note"),
        "nearest": c.filter_scores.get("nearest", []),
    }


class ReviewServer(LocalPageServer):
    """Serve the review page for the store at `db_path` on 127.0.0.1 (`port=0`: any free port)."""

    name = "review"
    token_header = "X-Review-Token"
    page_html = PAGE
    max_body = MAX_BODY

    def __init__(
        self,
        db_path: str | Path,
        *,
        port: int = 0,
        include_reviewed: bool = False,
        include_dropped: bool = False,
        principles: tuple[int, ...] | None = None,
        reviewer: str | None = None,
    ) -> None:
        super().__init__(db_path, port=port)
        self.include_reviewed, self.include_dropped = include_reviewed, include_dropped
        self.principles, self.reviewer = principles, reviewer
        self.cands: CandidateStore | None = None
        self._store: Store | None = None

    def queue(self) -> list[Candidate]:
        assert self.cands is not None
        status = None if self.include_reviewed else ("pending",)
        fstatus = None if self.include_dropped else ("unfiltered", "kept")
        return self.cands.list(status=status, principles=self.principles, filter_status=fstatus)

    def setup(self) -> None:
        self._store = Store(self.db_path)
        self.cands = CandidateStore(self._store)

    def teardown(self) -> None:
        if self._store is not None:
            self._store.close()

    def api_get(self, path: str) -> Any:
        if path != "/api/items":
            raise LookupError(path)
        assert self.cands is not None
        return {"items": [candidate_json(c) for c in self.queue()], "counts": self.cands.counts()}

    def api_post(self, path: str, body: dict[str, Any]) -> Any:
        if path != "/api/decide":
            raise LookupError(path)
        assert self.cands is not None
        if not isinstance(body.get("id"), str):
            raise ValueError("expected an object with id and decision")
        for k in ("request", "safe_response"):
            if body.get(k) is not None and not isinstance(body[k], str):
                raise ValueError(f"{k} must be text")
        cand = self.cands.decide(
            body["id"],
            str(body.get("decision")),
            request=body.get("request"),
            safe_response=body.get("safe_response"),
            reviewer=self.reviewer,
        )
        return {"item": candidate_json(cand), "counts": self.cands.counts()}
