"""medqa.report: the "Medical QA accuracy" report section, from `medqa_scores` rows written by the runner
itself (generation mode: `evaluate_medqa` over a real fake OpenAI server; log-likelihood mode: the runner's
writer `scores.put`) next to the fixture safety runs of `fixtures_report.build_store`; rows of each protocol
and settings are reported apart, each named."""

import pytest

from helpers.cli import run_main

pytest.importorskip("matplotlib")

from helpers.fixtures_report import build_store  # noqa: E402
from helpers.medqa import ROWS, reply_for  # noqa: E402
from medsafetybench.medqa import evaluate_medqa  # noqa: E402
from medsafetybench.medqa import report as mr  # noqa: E402
from medsafetybench.medqa.protocols import HarnessProtocol  # noqa: E402
from medsafetybench.medqa.scores import NewRow, canonical, harness_key, put  # noqa: E402
from medsafetybench.medqa.tasks import LETTERS, PROMPT_VERSION, PUBMEDQA_CHOICES, Question  # noqa: E402
from medsafetybench.metrics import bootstrap_mean  # noqa: E402
from medsafetybench.models.loading import load_model  # noqa: E402
from medsafetybench.models.spec import parse_spec  # noqa: E402
from medsafetybench.report import sections as sec  # noqa: E402
from medsafetybench.report.figures import close  # noqa: E402

# (task, question id, gold, per-choice log-likelihoods) for model-b: anatomy 3/4, college medicine 1/2
# (pooled mmlu_medical 4/6), pubmedqa 2/3
LOGLIK_ROWS = [
    ("mmlu_anatomy", "anatomy:1", 0, [-1, -2, -3, -4]),
    ("mmlu_anatomy", "anatomy:2", 1, [-2, -1, -3, -4]),
    ("mmlu_anatomy", "anatomy:3", 2, [-3, -2, -1, -4]),
    ("mmlu_anatomy", "anatomy:4", 3, [-1, -2, -3, -4]),
    ("mmlu_college_medicine", "college_medicine:1", 0, [-0.5, -2, -3, -4]),
    ("mmlu_college_medicine", "college_medicine:2", 1, [-9, -8, -7, -1]),
    ("pubmedqa", "p1", 0, [-1, -2, -3]),
    ("pubmedqa", "p2", 1, [-1, -2, -3]),
    ("pubmedqa", "p3", 2, [-5, -4, -0.5]),
]


def put_loglik(store, identity, rows, version=PROMPT_VERSION, add_bos=True):
    proto = HarnessProtocol(add_bos)
    out = []
    for task, qid, gold, lls in rows:
        q = Question(qid, f"question {qid}\nAnswer:", PUBMEDQA_CHOICES if task == "pubmedqa" else LETTERS, gold)
        out.append(
            NewRow(
                harness_key(identity, task, q, "loglik", proto),
                identity,
                task,
                qid,
                version,
                "loglik",
                gold,
                str(lls),
                None,
                "harness",
                canonical(proto.settings("loglik")),
                None,
            )
        )
    put(store, out)


@pytest.fixture
def project(tmp_path, fake_openai_factory):
    d = tmp_path / "qa" / "mmlu_medical"
    d.mkdir(parents=True)
    (d / "anatomy_test.csv").write_text("".join(",".join(r) + "\n" for r in ROWS))
    store, a, b = build_store(tmp_path / "proj")
    srv = fake_openai_factory(reply_for)
    model = load_model(parse_spec(f"openai:fake@{srv.base_url}"), api_key="k")
    model.identity = "openai:model-a"  # the same model as run a (build_store's identity)
    gen = evaluate_medqa(store, "openai:model-a", ["mmlu_anatomy"], d.parent, model=model)
    put_loglik(store, "openai:model-b|loglik", LOGLIK_ROWS)
    put_loglik(store, "openai:model-b|loglik", [("pubmedqa", "p9", 0, [-1, -2, -3])], version="old-prompt")
    put_loglik(store, "openai:model-z|loglik", LOGLIK_ROWS)  # no safety run: not shown
    yield store, a, b, gen
    store.close()


def test_table_and_tradeoff_figure(project):
    store, a, b, gen = project
    assert "medsafetybench.medqa.report" in sec.SECTION_MODULES
    [s] = mr.report_sections(store, store.runs())
    assert (s.key, s.title, s.order) == ("medqa", "Medical QA accuracy", 60)
    [text] = [x for x in s.blocks if isinstance(x, sec.Paragraph)]
    assert "option texts" in text.text  # the generation-mode caveat
    [table] = [x for x in s.blocks if isinstance(x, sec.TableBlock)]
    assert table.columns == ["model", "protocol", "task", "n", "accuracy [95% CI]", "invalid"]
    rows = {(r[0].split("@")[0], r[2]): r[3:] for r in table.rows}
    assert {(r[0].split("@")[0], r[1]) for r in table.rows} == {
        ("openai:model-a", "harness, generation"),
        ("openai:model-b", "harness"),
    }
    assert {m for m, _ in rows} == {"openai:model-a", "openai:model-b"}
    # model-a, generation: A right, B right, "Answer: b" (gold C) wrong, refusal invalid -> 2/4, as the runner says
    n, acc, invalid = rows[("openai:model-a", "mmlu_anatomy")]
    assert (n, acc.value, invalid) == (4, 0.5, 1) and acc == gen.tasks[0].acc
    assert rows[("openai:model-a", "mmlu_medical")][2] == 1 and rows[("openai:model-a", "macro")][1] == 0.5
    # model-b, log-likelihood (the old-prompt-version row is ignored); no invalid count
    for task, n, right in [
        ("mmlu_anatomy", 4, 3),
        ("mmlu_college_medicine", 2, 1),
        ("mmlu_medical", 6, 4),
        ("pubmedqa", 3, 2),
    ]:
        got_n, acc, invalid = rows[("openai:model-b", task)]
        assert (got_n, invalid) == (n, None) and acc.value == pytest.approx(right / n)
        assert acc == bootstrap_mean([1.0] * right + [0.0] * (n - right))
    assert rows[("openai:model-b", "macro")][1] == pytest.approx(2 / 3)  # (4/6 + 2/3) / 2
    # one figure per measure: generation (model-a) and log-likelihood (model-b) are never on one axis
    gen_fig, ll_fig = s.figures
    assert (gen_fig.name, ll_fig.name) == ("medqa-tradeoff", "medqa-tradeoff-2")
    assert (
        "generation" in gen_fig.figure.axes[0].get_xlabel() and "generation" not in ll_fig.figure.axes[0].get_xlabel()
    )
    points_a = {t.get_text(): t.xy for t in gen_fig.figure.axes[0].texts}
    points_b = {t.get_text(): t.xy for t in ll_fig.figure.axes[0].texts}
    assert set(points_a) == {"model-a"} and set(points_b) == {"model-b"}
    assert points_a["model-a"] == pytest.approx((0.5, 26 / 11))  # harmfulness of SCORES_A (11 scored)
    assert points_b["model-b"] == pytest.approx((2 / 3, 16 / 11))
    close(s.figures)


def test_each_protocol_is_its_own_row_and_figure(project):
    """Paper-protocol generations of model-b (stored as the runner stores them) sit beside its harness
    log-likelihoods, named, never merged: their accuracy is read with the reference's reader."""
    from medsafetybench.medqa.paper import PAPER_PROMPT_VERSION
    from medsafetybench.medqa.protocols import PaperProtocol
    from medsafetybench.medqa.scores import paper_key

    store = project[0]
    proto = PaperProtocol()
    replies = {"anatomy:1": "A", "anatomy:2": "b.", "anatomy:3": "Answer: C", "anatomy:4": "I cannot say"}
    rows = []
    for task, qid, gold, _ in LOGLIK_ROWS[:4]:
        q = Question(qid, "p", LETTERS, gold)
        rows.append(
            NewRow(
                paper_key("openai:model-b", task, q, PAPER_PROMPT_VERSION, "p", {}, proto, None),
                "openai:model-b",
                task,
                qid,
                PAPER_PROMPT_VERSION,
                "generate",
                gold,
                None,
                replies[qid],
                "paper",
                canonical(proto.settings()),
                None,
            )
        )
    put(store, rows)
    [s] = mr.report_sections(store, store.runs())
    [table] = [x for x in s.blocks if isinstance(x, sec.TableBlock)]
    paper_rows = {r[2]: r[3:] for r in table.rows if r[1] == "paper (0-shot)"}
    assert {r[0].split("@")[0] for r in table.rows if r[1] == "paper (0-shot)"} == {"openai:model-b"}
    # A right, b right, "Answer: C" reads as A (gold C: wrong), the refusal is invalid: 2/4
    n, acc, invalid = paper_rows["mmlu_anatomy"]
    assert (n, acc.value, invalid) == (4, 0.5, 1)
    assert [f.name for f in s.figures] == ["medqa-tradeoff", "medqa-tradeoff-2", "medqa-tradeoff-3"]
    assert "paper (0-shot)" in s.figures[2].figure.axes[0].get_xlabel()
    close(s.figures)


def test_no_rows_or_no_matching_identity(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    assert mr.report_sections(store, store.runs()) == []
    assert store.conn.execute("SELECT COUNT(*) FROM medqa_scores").fetchone() == (0,)
    put_loglik(store, "openai:model-z|loglik", LOGLIK_ROWS)
    assert mr.report_sections(store, store.runs()) == []
    assert mr.report_sections(store, []) == []
    store.close()


def test_identity_matching_and_short_names():
    assert mr.weights_key("hf:/m+/ad|fmt=llama2|w=ab.cd") == mr.weights_key("hf:/m+/ad|fmt=raw|w=ab.cd|loglik")
    assert mr.weights_key("hf:/m|fmt=raw|w=ab|loglik") != mr.weights_key("hf:/m|fmt=raw|w=ac|loglik")
    assert mr.short_name("openai:gpt-4o-mini@http://127.0.0.1:8000/v1") == "gpt-4o-mini"
    assert mr.short_name("hf:/models/Llama-2-7b/+/runs/adapter-med200/") == "Llama-2-7b+adapter-med200"


def test_report_command_writes_the_figure(project, tmp_path, capsys):
    store = project[0]
    out, figs = tmp_path / "r.html", tmp_path / "figs"
    assert run_main("report", "--project", str(store.path.parent), "--out", str(out), "--figures", str(figs)) == 0, (
        capsys.readouterr()
    )
    html = out.read_text()
    assert "Medical QA accuracy" in html and 'id="fig-medqa-tradeoff"' in html
    png = (figs / "medqa-tradeoff.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
