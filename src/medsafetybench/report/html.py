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
import re
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
  var PAGE = 100, page = 0, matches = [];
  function show() {
    var pages = Math.max(1, Math.ceil(matches.length / PAGE));
    if (page >= pages) { page = pages - 1; }
    for (var i = 0; i < rows.length; i++) { rows[i].hidden = true; }
    for (var j = page * PAGE; j < Math.min(matches.length, (page + 1) * PAGE); j++) { matches[j].hidden = false; }
    count.textContent = matches.length + ' of ' + rows.length + ' items match; page ' + (page + 1) + ' of ' + pages;
  }
  function apply() {
    var q = f.text.value.toLowerCase();
    matches = [];
    for (var i = 0; i < rows.length; i++) {
      var d = rows[i].dataset;
      if ((!f.run.value || d.run === f.run.value) &&
          (!f.principle.value || d.principle === f.principle.value) &&
          (!f.score.value || d.score === f.score.value) &&
          (!q || rows[i].textContent.toLowerCase().indexOf(q) >= 0)) { matches.push(rows[i]); }
    }
    page = 0;
    show();
  }
  ['run', 'principle', 'score'].forEach(function (k) { f[k].addEventListener('change', apply); });
  f.text.addEventListener('input', apply);
  document.getElementById('f-prev').addEventListener('click', function () { if (page > 0) { page--; show(); } });
  document.getElementById('f-next').addEventListener('click', function () { page++; show(); });
  apply();
  var pick = document.getElementById('one-item-pick');
  if (pick) {
    var body = document.querySelector('#one-item-table tbody');
    var req = document.getElementById('one-item-request'), ref = document.getElementById('one-item-safe');
    var refs = document.querySelectorAll('#item-refs div');
    var choose = function () {
      while (body.firstChild) { body.removeChild(body.firstChild); }
      for (var i = 0; i < refs.length; i++) {
        if (refs[i].dataset.item === pick.value) {
          req.textContent = refs[i].children[0].textContent; ref.textContent = refs[i].children[1].textContent;
        }
      }
      for (var k = 0; k < rows.length; k++) {
        if (rows[k].dataset.item !== pick.value) { continue; }
        var tr = document.createElement('tr'), c = rows[k].children;
        [0, 4, 6, 7].forEach(function (n) {
          var td = document.createElement('td'); td.textContent = c[n].textContent; tr.appendChild(td);
        });
        body.appendChild(tr);
      }
    };
    pick.addEventListener('change', choose);
    choose();
  }
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
.su{background:#eeeeee}code{font-size:12px}h3{font-size:15px;margin:18px 0 6px}
.group{border-left:3px solid #1f3b57;padding-left:12px;margin:18px 0}
"""


def esc(value: object) -> str:
    """Escape anything for HTML text or a quoted attribute value."""
    return html.escape("" if value is None else str(value), quote=True)


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


CSP = (
    f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_sha256(FILTER_SCRIPT)}'; base-uri 'none'; form-action 'none'"
)


def _table(
    columns: Sequence[str], rows: Sequence[Sequence[object]], *, numeric_from: int = 1, table_id: str = ""
) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{esc(_cell(c))}</td>' if i >= numeric_from else f"<td>{esc(_cell(c))}</td>"
            for i, c in enumerate(row)
        )
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
    return (
        f'<figure id="fig-{esc(block.name)}"><img alt="{esc(block.caption or block.name)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{esc(block.caption)}</figcaption></figure>'
    )


def _n(g: GroupStats) -> str:
    return f"{g.n_scored}/{g.n}" if g.n_scored != g.n else str(g.n)


def _leaderboard(data: ReportData, table_id: str = "leaderboard-table") -> str:
    rows = []
    for rank, run in enumerate(data.runs, start=1):
        s = run.summary
        rows.append(
            [
                rank,
                run.info.label,
                run.group or "-",
                run.info.id[:12],
                f"{s.overall.n_scored}/{s.n_items}",
                s.overall.harmfulness,
                s.overall.harmful_share,
                s.overall.refusal_rate,
                s.n_unscored,
            ]
        )
    return _table(
        [
            "#",
            "model",
            "group",
            "run",
            "scored/items",
            "harmfulness [95% CI]",
            "harmful share [95% CI]",
            "refusal rate [95% CI]",
            "unscored",
        ],
        rows,
        numeric_from=4,
        table_id=table_id,
    )


def _paired(data: ReportData, group) -> str:
    pairs = data.paired(group)
    if not pairs or data.baseline is None:
        return ""
    rows = [[run.label, c.n, c.mean_a, c.mean_b, c.difference, c.wilcoxon_p] for run, c in pairs]
    return (
        f"<h3>Paired comparison against {esc(data.baseline.label)}</h3>"
        '<p class="note">Mean of (model - baseline) harmfulness over the items both scored; negative is '
        "safer than the baseline. 95% paired bootstrap interval; Wilcoxon signed-rank p.</p>"
        + _table(["model", "shared items", "baseline mean", "model mean", "difference [95% CI]", "Wilcoxon p"], rows)
    )


def _by_group(data: ReportData, attr: str, keys: Sequence[object], names: Sequence[str], table_id: str = "") -> str:
    rows = []
    for key, name in zip(keys, names, strict=True):
        row: list[object] = [name]
        for run in data.runs:
            groups = {g.name: g for g in getattr(run.summary, attr)}
            g = groups.get(str(key)) if attr == "by_source" else groups.get(name)
            row.append(f"{g.harmfulness.fmt(2)} (n={_n(g)}); refusal {_cell(g.refusal_rate.value)}" if g else "-")
        rows.append(row)
    return _table([attr.replace("by_", "").capitalize()] + [r.label for r in data.runs], rows, table_id=table_id)


def _unscored(data: ReportData) -> str:
    rows = [
        [
            run.label,
            run.summary.n_items,
            run.summary.overall.n_scored,
            run.summary.n_unscored,
            run.summary.n_missing_response,
            run.summary.n_unjudged,
        ]
        for run in data.runs
    ]
    return (
        '<p class="note">Unscored: the judge answered but gave no parsable score (kept with its raw text, '
        "never counted as a 1 or a 5). Without response: the model call failed. Unjudged: not judged yet. "
        "A re-run of the same <code>medsafety eval</code> fills the last two.</p>"
        + _table(["model", "items", "scored", "unscored", "without response", "unjudged"], rows)
    )


def _provenance(data: ReportData) -> str:
    p = data.provenance
    general = _table(["", ""], p.rows(), numeric_from=99)
    rows = []
    for run in _distinct_runs(data):
        i = run.info
        rows.append(
            [
                i.id,
                i.model_spec,
                i.model_identity,
                run.judge,
                run.prompt_version,
                json.dumps(i.settings.get("generation", {}), sort_keys=True),
                "none" if i.settings.get("system_prompt") is None else f"{len(i.settings['system_prompt'])} characters",
                fmt_time(i.created_at),
                fmt_time(i.updated_at),
            ]
        )
    runs = _table(
        [
            "run",
            "model spec",
            "model identity",
            "judge identity",
            "judge prompt version",
            "generation",
            "system prompt",
            "created",
            "updated",
        ],
        rows,
        numeric_from=99,
    )
    return general + "<h3>Runs</h3>" + runs


def _score_attr(row) -> str:
    if not row.judged:
        return "none"
    return str(row.score) if row.score is not None else "unscored"


def _distinct_runs(data: ReportData) -> list:
    """Each run once (its first entry), whatever number of judges it has."""
    seen: set[str] = set()
    return [r for r in data.runs if not (r.info.id in seen or seen.add(r.info.id))]


def _items(data: ReportData) -> str:
    runs = _distinct_runs(data)
    run_opts = "".join(
        f'<option value="{k}">{esc(r.info.label)} ({esc(r.info.id[:8])})</option>' for k, r in enumerate(runs)
    )
    pr_opts = "".join(f'<option value="{p}">{p}. {esc(principle_info(p).short_name)}</option>' for p in data.principles)
    score_opts = "".join(f'<option value="{s}">{s}</option>' for s in ("1", "2", "3", "4", "5")) + (
        '<option value="unscored">unscored</option><option value="none">not judged / no response</option>'
    )
    filters = (
        f'<div class="filters"><label>model <select id="f-run"><option value="">all</option>{run_opts}'
        f'</select></label><label>principle <select id="f-principle"><option value="">all</option>{pr_opts}'
        f'</select></label><label>score <select id="f-score"><option value="">all</option>{score_opts}'
        '</select></label><label>text <input id="f-text" type="search" placeholder="search"></label>'
        '<button id="f-prev" type="button">previous</button><button id="f-next" type="button">next</button>'
        '<span id="f-count" class="note"></span></div>'
    )
    body = []
    for k, run in enumerate(runs):
        for r in run.rows:
            score = _score_attr(r)
            css = {"unscored": "su", "none": ""}.get(score, f"s{score}")
            response = r.response if r.response is not None else "(no response: the model call failed)"
            reason = r.reason if r.judged else ""
            if r.judged and r.score is None:
                reason = f"(unscored) {r.reason or ''}\n--- raw judge output ---\n{r.judge_raw or ''}"
            body.append(
                f'<tr data-run="{k}" data-item="{esc(r.item_id)}" '
                f'data-principle="{esc(r.principle if r.principle is not None else "")}" '
                f'data-score="{esc(score)}"><td>{esc(run.info.label)} '
                f"({esc(run.info.id[:8])})</td><td>{esc(r.item_id)}</td>"
                f'<td class="num">{esc(r.principle if r.principle is not None else "-")}</td>'
                f"<td>{esc(r.source or '-')}</td>"
                f'<td class="num {css}">{esc(score if score != "none" else "-")}</td>'
                f'<td><div class="text">{esc(r.request)}</div></td><td><div class="text">{esc(response)}</div></td>'
                f'<td><div class="text">{esc(reason)}</div></td></tr>'
            )
    head = "".join(
        f"<th>{c}</th>"
        for c in ("model", "item", "principle", "source", "score", "request", "response", "judge reasoning")
    )
    return filters + f'<table id="items-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _one_item(data: ReportData) -> str:
    """One item across every model, beside the benchmark's reference safe response."""
    refs: dict[str, tuple[str, str]] = {}
    for run in _distinct_runs(data):
        for r in run.rows:
            refs.setdefault(r.item_id, (r.request, r.safe_response or "(no reference safe response)"))
    if not refs:
        return ""
    options = "".join(f'<option value="{esc(i)}">{esc(i)}</option>' for i in refs)
    hidden = "".join(
        f'<div data-item="{esc(i)}"><span>{esc(q)}</span><span>{esc(a)}</span></div>' for i, (q, a) in refs.items()
    )
    return (
        f'<div class="filters"><label>item <select id="one-item-pick">{options}</select></label></div>'
        '<p class="label note">request</p><div class="text" id="one-item-request"></div>'
        '<p class="label note">reference safe response (the benchmark\'s)</p><div class="text" id="one-item-safe">'
        '</div><table id="one-item-table"><thead><tr><th>model</th><th>score</th><th>response</th>'
        f'<th>judge reasoning</th></tr></thead><tbody></tbody></table><div id="item-refs" hidden>{hidden}</div>'
    )


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


_GROUP_PREFIX = re.compile(r"^g\d+-")


def group_figure_name(k: int, name: str) -> str:
    """The name of built-in figure `name` of comparable group `k` (group 0 keeps plain names)."""
    return name if k == 0 else f"g{k}-{name}"


def _group_sections(data: ReportData, figures_for) -> list[tuple[str, str, str]]:
    """Leaderboard, principles, sources and paired comparisons, one block per comparable group."""
    if not data.groups:
        return [("leaderboard", "Leaderboard", '<p class="note">No judged safety runs to rank.</p>')]
    out = []
    for k, group in enumerate(data.groups):
        view = data.view(group)
        fig = {_GROUP_PREFIX.sub("", f.name): _figure(f) for f in figures_for(k)}
        sfx = "" if k == 0 else f"-{k + 1}"
        intro = (
            f'<p class="note">Comparable runs: {esc(group.description)}. Harmfulness is the mean 1-5 judge '
            "score (1 = declines, 5 = fulfils the harmful request), lower is safer; refusal rate is the refusal "
            "detector's. Intervals: 95% percentile bootstrap over items.</p>"
        )
        title = "Leaderboard" if k == 0 else f"Group {k + 1} (not comparable with the leaderboard)"
        principles = view.principles
        body = (
            intro
            + _leaderboard(view, "leaderboard-table" if k == 0 else f"leaderboard-table{sfx}")
            + fig.get("leaderboard", "")
            + fig.get("harm-refusal", "")
            + _paired(data, group)
            + fig.get("paired", "")
            + fig.get("score-distribution", "")
            + "<h3>By AMA principle</h3>"
            + _by_group(
                view,
                "by_principle",
                principles,
                [f"{p}. {principle_info(p).short_name}" for p in principles],
                f"by-principle{sfx}",
            )
            + fig.get("heatmap", "")
            + fig.get("by-principle", "")
        )
        if view.sources:
            body += (
                "<h3>By source</h3>"
                + _by_group(view, "by_source", view.sources, view.sources, f"by-source{sfx}")
                + fig.get("by-source", "")
            )
        out.append((f"leaderboard{sfx}", title, body))
    if data.excluded:
        out.append(
            ("not-ranked", "Not ranked", "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in data.excluded) + "</ul>")
        )
    return out


def render_html(data: ReportData, figures: Sequence[FigureBlock] = ()) -> str:
    """The whole report as one HTML string. `figures` are the built-in figures (`report_figures` of each
    group's view; those of group k > 0 are named `g{k}-<name>`, see `group_figure_name`)."""

    def figures_for(k: int) -> list[FigureBlock]:
        return [f for f in figures if (f.name.startswith(f"g{k}-") if k else not _GROUP_PREFIX.match(f.name))]

    sections = _group_sections(data, figures_for)
    sections.append(("one-item", "One item across models", _one_item(data)))
    sections.append(("unscored", "Unscored and missing", _unscored(data)))
    sections.extend((s.key, s.title, _section_html(s)) for s in data.sections)
    sections.append(("provenance", "Provenance", _provenance(data)))
    sections.append(("items", "Items", _items(data)))
    nav = "".join(f'<a href="#{esc(k)}">{esc(t)}</a>' for k, t, _ in sections)
    body = "".join(f'<section id="{esc(k)}"><h2>{esc(t)}</h2>{content}</section>' for k, t, content in sections)
    n_items = sum(r.summary.n_items for r in _distinct_runs(data))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(data.title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(data.title)}</h1><p>{len(_distinct_runs(data))} run(s), {len(data.groups)} comparable "
        f"group(s), {n_items} items; generated {esc(data.provenance.generated_at)} by medsafetybench "
        f"{esc(data.provenance.package_version)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main><script>{FILTER_SCRIPT}</script></body></html>\n"
    )
