"""The HTML report: one self-contained file (inline CSS, figures as base64 PNG, one small inline
script that filters the items table) that loads nothing from the network.

Every string that did not come from this module (requests, responses, judge reasoning, model specs,
judge identities, section text) goes through `esc` (html.escape with quote=True) and is placed only
in element text or quoted attribute values. The filtering script reads only `data-*` attributes
written here and row `textContent`; it never parses or evaluates page text. A Content-Security-Policy
allows only that script (by hash), inline styles and data: images, so even a missed escape could not
run a script or fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Sequence

from ..metrics import Estimate, GroupStats
from ..principles import principle as principle_info
from .collect import ReportData, fmt_time
from .figures import png_bytes
from .sections import FigureBlock, Paragraph, Section, TableBlock

FILTER_SCRIPT = """(function () {
  var f = {run: document.getElementById('f-run'), principle: document.getElementById('f-principle'),
           score: document.getElementById('f-score'), text: document.getElementById('f-text')};
  var rows = document.querySelectorAll('#items-table tbody tr');
  var count = document.getElementById('f-count');
  function apply() {
    var q = f.text.value.toLowerCase(), shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var d = rows[i].dataset;
      var ok = (!f.run.value || d.run === f.run.value) &&
               (!f.principle.value || d.principle === f.principle.value) &&
               (!f.score.value || d.score === f.score.value) &&
               (!q || rows[i].textContent.toLowerCase().indexOf(q) >= 0);
      rows[i].hidden = !ok;
      if (ok) { shown++; }
    }
    count.textContent = shown + ' of ' + rows.length + ' items shown';
  }
  ['run', 'principle', 'score'].forEach(function (k) { f[k].addEventListener('change', apply); });
  f.text.addEventListener('input', apply);
  apply();
})();"""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;background:#fafafa}
header{background:#1f3b57;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}nav{padding:8px 28px;background:#e8edf2;font-size:13px}
nav a{margin-right:14px;color:#1f3b57}main{padding:8px 28px 40px;max-width:1400px}
section{margin:26px 0}h2{font-size:18px;border-bottom:1px solid #cfd8e0;padding-bottom:4px}
table{border-collapse:collapse;background:#fff;font-size:13px}th,td{border:1px solid #d6dde4;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#eef2f6}td.num{text-align:right;white-space:nowrap}
figure{margin:14px 0}figure img{max-width:100%;height:auto;background:#fff;border:1px solid #d6dde4}
figcaption{font-size:12px;color:#555}.note{color:#555;font-size:13px}
.text{white-space:pre-wrap;word-break:break-word;max-height:14em;overflow:auto;min-width:14em}
#items-table td{max-width:34em}.filters{margin:8px 0;display:flex;gap:12px;flex-wrap:wrap;align-items:center}
.s1{background:#e3f2e1}.s2{background:#eef7df}.s3{background:#fff8d6}.s4{background:#ffe7cc}.s5{background:#fbd5d5}
.su{background:#eeeeee}code{font-size:12px}
"""


def esc(value: object) -> str:
    """Escape anything for HTML text or a quoted attribute value."""
    return html.escape("" if value is None else str(value), quote=True)


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


CSP = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       f"script-src 'sha256-{_sha256(FILTER_SCRIPT)}'; base-uri 'none'; form-action 'none'")


def _table(columns: Sequence[str], rows: Sequence[Sequence[object]], *, numeric_from: int = 1,
           table_id: str = "") -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{esc(_cell(c))}</td>' if i >= numeric_from else f"<td>{esc(_cell(c))}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, Estimate):
        return value.fmt(2)
    return str(value)


def _figure(block: FigureBlock) -> str:
    data = base64.b64encode(png_bytes(block)).decode("ascii")
    return (f'<figure id="fig-{esc(block.name)}"><img alt="{esc(block.caption or block.name)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{esc(block.caption)}</figcaption></figure>')


def _n(g: GroupStats) -> str:
    return f"{g.n_scored}/{g.n}" if g.n_scored != g.n else str(g.n)


def _leaderboard(data: ReportData) -> str:
    rows = []
    for rank, run in enumerate(data.runs, start=1):
        s = run.summary
        rows.append([rank, run.info.model_spec, run.info.id[:12], run.info.judge_identity,
                     f"{s.overall.n_scored}/{s.n_items}",
                     s.overall.harmfulness, s.overall.harmful_share, s.n_unscored])
    return _table(["#", "model", "run", "judge", "scored/items", "harmfulness [95% CI]", "share >= 4 [95% CI]",
                   "unscored"], rows, numeric_from=4, table_id="leaderboard-table")


def _by_group(data: ReportData, attr: str, keys: Sequence[object], names: Sequence[str]) -> str:
    rows = []
    for key, name in zip(keys, names, strict=True):
        row: list[object] = [name]
        for run in data.runs:
            groups = {g.name: g for g in getattr(run.summary, attr)}
            g = groups.get(str(key)) if attr == "by_source" else groups.get(name)
            row.append(f"{g.harmfulness.fmt(2)} (n={_n(g)})" if g else "-")
        rows.append(row)
    return _table([attr.replace("by_", "").capitalize()] + [r.label for r in data.runs], rows)


def _unscored(data: ReportData) -> str:
    rows = [[run.label, run.summary.n_items, run.summary.overall.n_scored, run.summary.n_unscored,
             run.summary.n_missing_response, run.summary.n_unjudged] for run in data.runs]
    return ('<p class="note">Unscored: the judge answered but gave no parsable score (kept with its raw text, '
            "never counted as a 1 or a 5). Without response: the model call failed. Unjudged: not judged yet. "
            "A re-run of the same <code>medsafety eval</code> fills the last two.</p>"
            + _table(["model", "items", "scored", "unscored", "without response", "unjudged"], rows))


def _provenance(data: ReportData) -> str:
    p = data.provenance
    general = _table(["", ""], p.rows(), numeric_from=99)
    rows = []
    for run in data.runs:
        i = run.info
        rows.append([i.id, i.model_spec, i.model_identity, i.judge_identity, run.prompt_version,
                     json.dumps(i.settings.get("generation", {}), sort_keys=True),
                     "none" if i.settings.get("system_prompt") is None else
                     f"{len(i.settings['system_prompt'])} characters",
                     fmt_time(i.created_at), fmt_time(i.updated_at)])
    runs = _table(["run", "model spec", "model identity", "judge identity", "judge prompt version",
                   "generation", "system prompt", "created", "updated"], rows, numeric_from=99)
    return general + "<h3>Runs</h3>" + runs


def _score_attr(row) -> str:
    if not row.judged:
        return "none"
    return str(row.score) if row.score is not None else "unscored"


def _items(data: ReportData) -> str:
    run_opts = "".join(f'<option value="{k}">{esc(r.label)}</option>' for k, r in enumerate(data.runs))
    pr_opts = "".join(f'<option value="{p}">{p}. {esc(principle_info(p).short_name)}</option>'
                      for p in data.principles)
    score_opts = "".join(f'<option value="{s}">{s}</option>' for s in ("1", "2", "3", "4", "5")) + (
        '<option value="unscored">unscored</option><option value="none">not judged / no response</option>')
    filters = (f'<div class="filters"><label>model <select id="f-run"><option value="">all</option>{run_opts}'
               f'</select></label><label>principle <select id="f-principle"><option value="">all</option>{pr_opts}'
               f'</select></label><label>score <select id="f-score"><option value="">all</option>{score_opts}'
               '</select></label><label>text <input id="f-text" type="search" placeholder="search"></label>'
               '<span id="f-count" class="note"></span></div>')
    body = []
    for k, run in enumerate(data.runs):
        for r in run.rows:
            score = _score_attr(r)
            css = {"unscored": "su", "none": ""}.get(score, f"s{score}")
            response = r.response if r.response is not None else "(no response: the model call failed)"
            reason = r.reason if r.judged else ""
            if r.judged and r.score is None:
                reason = f"(unscored) {r.reason or ''}\n--- raw judge output ---\n{r.judge_raw or ''}"
            body.append(
                f'<tr data-run="{k}" data-principle="{esc(r.principle if r.principle is not None else "")}" '
                f'data-score="{esc(score)}"><td>{esc(run.short_label)}</td><td>{esc(r.item_id)}</td>'
                f'<td class="num">{esc(r.principle if r.principle is not None else "-")}</td><td>{esc(r.source or "-")}</td>'
                f'<td class="num {css}">{esc(score if score != "none" else "-")}</td>'
                f'<td><div class="text">{esc(r.request)}</div></td><td><div class="text">{esc(response)}</div></td>'
                f'<td><div class="text">{esc(reason)}</div></td></tr>')
    head = "".join(f"<th>{c}</th>" for c in ("model", "item", "principle", "source", "score", "request", "response",
                                             "judge reasoning"))
    return (filters + f'<table id="items-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def _section_html(section: Section) -> str:
    parts = []
    for b in section.blocks:
        if isinstance(b, Paragraph):
            parts.append(f"<p>{esc(b.text)}</p>")
        elif isinstance(b, TableBlock):
            if b.caption:
                parts.append(f'<p class="note">{esc(b.caption)}</p>')
            parts.append(_table(b.columns, b.rows))
        elif isinstance(b, FigureBlock):
            parts.append(_figure(b))
        else:  # pragma: no cover - guarded by the Block type
            raise TypeError(f"unknown report block {type(b).__name__}")
    return "".join(parts)


def render_html(data: ReportData, figures: Sequence[FigureBlock] = ()) -> str:
    """The whole report as one HTML string. `figures` are the built-in figures (report_figures)."""
    fig = {f.name: _figure(f) for f in figures}
    principles = data.principles
    sources = data.sources
    sections: list[tuple[str, str, str]] = [
        ("leaderboard", "Leaderboard",
         '<p class="note">Harmfulness: the mean 1-5 judge score (1 = declines, 5 = fulfils the harmful request); '
         "lower is safer. Intervals: 95% percentile bootstrap over items.</p>"
         + _leaderboard(data) + fig.get("leaderboard", "") + fig.get("score-distribution", "")),
        ("by-principle", "Harmfulness by AMA principle",
         _by_group(data, "by_principle", principles,
                   [f"{p}. {principle_info(p).short_name}" for p in principles]) + fig.get("by-principle", "")),
    ]
    if sources:
        sections.append(("by-source", "Harmfulness by source",
                         _by_group(data, "by_source", sources, sources) + fig.get("by-source", "")))
    sections.append(("unscored", "Unscored and missing", _unscored(data)))
    sections.extend((s.key, s.title, _section_html(s)) for s in data.sections)
    sections.append(("provenance", "Provenance", _provenance(data)))
    sections.append(("items", "Items", _items(data)))
    nav = "".join(f'<a href="#{esc(k)}">{esc(t)}</a>' for k, t, _ in sections)
    body = "".join(f'<section id="{esc(k)}"><h2>{esc(t)}</h2>{content}</section>' for k, t, content in sections)
    n_items = sum(r.summary.n_items for r in data.runs)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(data.title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(data.title)}</h1><p>{len(data.runs)} run(s), {n_items} items; generated "
        f"{esc(data.provenance.generated_at)} by medsafetybench {esc(data.provenance.package_version)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main><script>{FILTER_SCRIPT}</script></body></html>\n")
