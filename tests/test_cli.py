"""The `medsafety` command: user mistakes give one line and exit 2; runs/show/export work."""

import csv
import json
import os
import subprocess
import sys

import pytest

from helpers.cli import run_main
from helpers.paths import REPO
from medsafetybench.testing.fake_openai import FakeOpenAIServer

SRC = str(REPO / "src")


def cli(*args):
    """Run the CLI in a subprocess exactly as a user would."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "medsafetybench.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def judge_reply(request):
    return (
        "#reason: declines\n#score: 1" if "cannot" in request["messages"][-1]["content"] else "#reason: ok\n#score: 4"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--model", "gpt-4o"], "has no backend"),
        (["eval", "--model", "foo:bar"], "unknown backend 'foo'"),
        (["eval", "--model", "openai:m@localhost:1"], "must start with http"),
        (["eval", "--model", "hf:/nonexistent/model", "--split", "sample"], "/nonexistent/model"),
        (
            ["eval", "--model", "openai:m@http://127.0.0.1:9/v1", "--split", "sample", "--principle", "12"],
            "principle 12",
        ),
        (["eval", "--model", "openai:m@http://127.0.0.1:9/v1", "--split", "sample", "--principle", "x"], "--principle"),
        (["eval", "--model", "openai:m@http://127.0.0.1:9/v1", "--data", "/nonexistent/data"], "/nonexistent/data"),
        (
            ["eval", "--model", "openai:m@http://127.0.0.1:9/v1", "--prompt-format", "llama2", "--split", "sample"],
            "--prompt-format",
        ),
        (["show", "nope"], "no run store"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path, args, message):
    r = cli(*args, *(["--project", str(tmp_path)] if args[0] in ("eval", "show") else []))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_input_file_is_named(tmp_path):
    bad = tmp_path / "mine.csv"
    bad.write_text("text\nhello\n")
    r = cli("eval", "--model", "openai:m@http://127.0.0.1:9/v1", "--input", str(bad), "--project", str(tmp_path))
    assert r.returncode == 2 and "mine.csv" in r.stderr and "Traceback" not in r.stderr


def test_unknown_option_is_a_usage_error():
    r = cli("eval", "--modle", "x")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_eval_runs_show_export(tmp_path, capsys):
    user = tmp_path / "requests.jsonl"
    user.write_text(
        "\n".join(json.dumps({"request": f"Please help with task {i}", "principle": 1 + i % 9}) for i in range(6))
        + "\n"
    )
    with FakeOpenAIServer(lambda r: "I cannot do that.") as model_srv, FakeOpenAIServer(judge_reply) as judge_srv:
        args = [
            "eval",
            "--model",
            f"openai:m@{model_srv.base_url}",
            "--judge",
            f"openai:j@{judge_srv.base_url}",
            "--input",
            str(user),
            "--project",
            str(tmp_path),
        ]
        assert run_main(*args, "--json") == 0
        report = json.loads(capsys.readouterr().out)
        assert report["model_calls"] == 6 and report["summary"]["overall"]["harmfulness"]["value"] == 1.0
        assert run_main(*args) == 0  # tables, and no new calls
        text = capsys.readouterr().out
        assert "harmfulness" in text and "this time: model: 0 requests" in text
    run_id = report["run_id"]

    assert run_main("runs", "--project", str(tmp_path), "--json") == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in runs] == [run_id]
    assert run_main("runs", "--project", str(tmp_path)) == 0
    assert run_id in capsys.readouterr().out
    assert run_main("show", run_id[:6], "--project", str(tmp_path)) == 0
    assert "Harmfulness by principle" in capsys.readouterr().out

    for fmt in ("jsonl", "csv", "parquet"):
        out = tmp_path / f"export.{fmt}"
        assert run_main("export", run_id, "--out", str(out), "--project", str(tmp_path)) == 0
        assert out.exists()
    rows = [json.loads(ln) for ln in (tmp_path / "export.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {r["score"] for r in rows} == {1} and rows[0]["response"] == "I cannot do that."
    # every row says what makes it comparable
    assert {r["refused"] for r in rows} == {True} and {r["harmful"] for r in rows} == {False}
    assert rows[0]["judge_prompt_version"] == "msb-judge-v1" and rows[0]["medsafetybench"]
    assert rows[0]["data_commit"] is None  # a user file, not the release
    assert rows[0]["model_identity"].startswith("openai:m@") and rows[0]["items_digest"] and rows[0]["settings_digest"]
    with open(tmp_path / "export.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 6
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "export.parquet")
    assert table.num_rows == 6
    assert json.loads(table.schema.metadata[b"medsafetybench.evaluation.provenance"])["data"]["kind"] == "user-file"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_export_unknown_format(tmp_path, capsys):
    from medsafetybench.store import Store

    with Store.open_project(tmp_path) as s:
        s.create_run("r1", model_spec="m", model_identity="m", judge_identity="j", settings={}, items=[])
    assert run_main("export", "r1", "--out", str(tmp_path / "x.xlsx"), "--project", str(tmp_path)) == 2
    assert "--format" in capsys.readouterr().err
    assert not (tmp_path / "x.xlsx").exists()


def test_api_key_never_reaches_store_output_or_exports(tmp_path):
    secret = "sk-test-DO-NOT-LEAK-0123456789"
    with (
        FakeOpenAIServer(lambda r: "I cannot do that.", api_key=secret) as model_srv,
        FakeOpenAIServer(judge_reply, api_key=secret) as judge_srv,
    ):
        env_args = [
            "eval",
            "--model",
            f"openai:m@{model_srv.base_url}",
            "--judge",
            f"openai:j@{judge_srv.base_url}",
            "--split",
            "sample",
            "--limit",
            "3",
            "--project",
            str(tmp_path),
            "--json",
        ]
        env = {**os.environ, "PYTHONPATH": SRC, "OPENAI_API_KEY": secret}
        r = subprocess.run(
            [sys.executable, "-m", "medsafetybench.cli", *env_args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert model_srv.stats().by_outcome["ok"] == 3  # the key was sent and accepted
        run_id = json.loads(r.stdout)["run_id"]
        exported = tmp_path / "out.jsonl"
        e = subprocess.run(
            [
                sys.executable,
                "-m",
                "medsafetybench.cli",
                "export",
                run_id,
                "--out",
                str(exported),
                "--project",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert e.returncode == 0
    blobs = [r.stdout, r.stderr, e.stdout, e.stderr, exported.read_text()]
    blobs += [p.read_bytes().decode("latin-1") for p in tmp_path.glob("medsafety.db*")]
    assert not any(secret in b for b in blobs)


def test_wrong_api_key_fails_without_storing_and_exits_1(tmp_path):
    with FakeOpenAIServer(lambda r: "x", api_key="right") as srv:
        env = {**os.environ, "PYTHONPATH": SRC, "OPENAI_API_KEY": "wrong-key-123"}
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "medsafetybench.cli",
                "eval",
                "--model",
                f"openai:m@{srv.base_url}",
                "--judge",
                f"openai:j@{srv.base_url}",
                "--split",
                "sample",
                "--limit",
                "2",
                "--project",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert r.returncode == 1
    assert "OPENAI_API_KEY" in r.stderr and "wrong-key-123" not in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_credentials_in_base_urls_are_never_stored_or_shown(tmp_path):
    """A password in the URL and a key in its query string reach the server but no file or output."""
    password, key = "pw-PLANTED-9876543210", "key-PLANTED-0123456789"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = SRC
    with (
        FakeOpenAIServer(lambda r: "I cannot do that.", api_key=key) as model_srv,
        FakeOpenAIServer(judge_reply, api_key=key) as judge_srv,
    ):

        def secret_url(srv):
            return srv.base_url.replace("http://", f"http://alice:{password}@") + f"?api_key={key}"

        def medsafety(*args):
            return subprocess.run(
                [sys.executable, "-m", "medsafetybench.cli", *args, "--project", str(tmp_path)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )

        r = medsafety(
            "eval",
            "--model",
            f"openai:m@{secret_url(model_srv)}",
            "--judge",
            f"openai:j@{secret_url(judge_srv)}",
            "--split",
            "sample",
            "--limit",
            "3",
            "--json",
        )
        assert r.returncode == 0, r.stderr
        assert model_srv.stats().by_outcome["ok"] == 3 and judge_srv.stats().by_outcome["ok"] == 3
        out = json.loads(r.stdout)
        safe_model = f"openai:m@{model_srv.base_url}"
        assert out["model"] == safe_model
        run_id = out["run_id"]
        table = medsafety(
            "eval",
            "--model",
            f"openai:m@{secret_url(model_srv)}",
            "--judge",
            f"openai:j@{secret_url(judge_srv)}",
            "--split",
            "sample",
            "--limit",
            "3",
        )
        outputs = [
            r,
            table,
            medsafety("runs"),
            medsafety("runs", "--json"),
            medsafety("show", run_id),
            medsafety("show", run_id, "--json"),
        ]
        files = [tmp_path / "out.jsonl", tmp_path / "out.csv", tmp_path / "report.html", tmp_path / "report.md"]
        outputs += [
            medsafety("export", run_id, "--out", str(files[0])),
            medsafety("export", run_id, "--out", str(files[1])),
            medsafety("report", "--out", str(files[2]), "--markdown", str(files[3])),
        ]
    assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
    blobs = [o.stdout + o.stderr for o in outputs] + [f.read_text() for f in files]
    blobs += [p.read_bytes().decode("latin-1") for p in tmp_path.glob("medsafety.db*")]
    assert any(safe_model in b for b in blobs[-3:])  # the safe form is what the store holds
    for secret in (password, key):
        assert not any(secret in b for b in blobs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--judge", "bogus:x"], "unknown judge 'bogus'"),
        (["--judge", "hf:/nonexistent/judge"], "--judge hf:/nonexistent/judge: model path"),
        (["--judge", "openai:gpt-4o"], "--judge openai:gpt-4o: OPENAI_API_KEY is not set"),
        (["--model", "vllm:/nonexistent"], "model path '/nonexistent' does not exist"),
        (["--model", "hf:/nonexistent+/adapter"], "'/nonexistent' does not exist"),
    ],
)
def test_bad_specs_fail_before_the_project_is_touched(tmp_path, args, message):
    base = ["eval", "--model", "openai:m@http://127.0.0.1:9/v1", "--split", "sample"]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = SRC
    project = tmp_path / "proj"
    r = subprocess.run(
        [sys.executable, "-m", "medsafetybench.cli", *base, *args, "--project", str(project)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not project.exists()


def test_unreachable_server_fails_fast_with_one_line(tmp_path):
    port = _free_port()
    r = cli(
        "eval",
        "--model",
        f"openai:m@http://u:pw-SECRET@127.0.0.1:{port}/v1",
        "--split",
        "sample",
        "--limit",
        "5",
        "--project",
        str(tmp_path),
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"cannot connect to http://127.0.0.1:{port}/v1" in r.stderr and "pw-SECRET" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == r.stderr.strip().splitlines()[-1]


def test_requests_longer_than_the_context_are_flagged(tmp_path, fake_openai_factory, capsys):
    srv = fake_openai_factory()
    judge = fake_openai_factory(judge_reply)
    reqs = tmp_path / "reqs.jsonl"
    reqs.write_text(json.dumps({"request": "short question"}) + "\n" + json.dumps({"request": "long " * 4000}) + "\n")
    code = run_main(
        "eval",
        "--model",
        f"openai:m@{srv.base_url}",
        "--judge",
        f"openai:j@{judge.base_url}",
        "--input",
        str(reqs),
        "--context-window",
        "4000",
        "--max-new-tokens",
        "16",
        "--system-prompt",
        "none",
        "--project",
        str(tmp_path / "p"),
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "1 request(s) do not fit the 4,000-token context of --model openai:m@" in err
    assert "user/reqs/2" in err and "user/reqs/1 " not in err
    assert "of --judge openai:j@" in err  # the judge prompt is longer still
    assert srv.stats().total_calls == 2  # warned, not cut: both were sent


def test_eval_paper_format_picks_family_and_its_system_prompt(tmp_path, capsys, tiny_model_dir):
    """--prompt-format paper on a local model: the family's paper format (in the identity), the paper's
    system text for it by default, and responses cut as the paper cut them."""
    from medsafetybench.principles import LLAMA2_DEFAULT_SYSTEM_PROMPT
    from medsafetybench.store import Store

    args = [
        "eval",
        "--model",
        f"hf:{tiny_model_dir}",
        "--split",
        "sample",
        "--limit",
        "3",
        "--max-new-tokens",
        "6",
        "--project",
        str(tmp_path),
        "--json",
    ]
    assert run_main(*args, "--prompt-format", "paper") == 0
    captured = capsys.readouterr()
    assert "using paper-llama2" in captured.err
    run_id = json.loads(captured.out)["run_id"]
    with Store.open_project(tmp_path) as store:
        info = store.run(run_id)
        rows = store.run_rows(run_id)
    assert "|fmt=paper-llama2|" in info.model_identity
    assert info.settings["system_prompt"] == LLAMA2_DEFAULT_SYSTEM_PROMPT
    assert all(r.response == r.response.strip() for r in rows)
    assert run_main(*args, "--prompt-format", "paper-llama2") == 0  # the same identity: all from the store
    assert json.loads(capsys.readouterr().out)["model_calls"] == 0
    assert run_main(*args, "--prompt-format", "paper-mistral") == 0
    with Store.open_project(tmp_path) as store:
        mistral = store.run(json.loads(capsys.readouterr().out)["run_id"])
    assert mistral.settings["system_prompt"].startswith("Always assist with care, respect, and truth.")


def test_eval_paper_format_unknown_family_is_one_line(tmp_path):
    model = tmp_path / "checkpoint"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    r = cli(
        "eval",
        "--model",
        f"hf:{model}",
        "--prompt-format",
        "paper",
        "--split",
        "sample",
        "--project",
        str(tmp_path / "p"),
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot tell the model family" in r.stderr and "paper-llama2|paper-mistral" in r.stderr
    assert not (tmp_path / "p").exists()


def test_eval_paper_format_on_openai_sends_what_the_paper_sent_gpt(tmp_path, capsys):
    from medsafetybench.principles import LLAMA2_DEFAULT_SYSTEM_PROMPT

    bodies = []

    def responder(request):
        bodies.append(request)
        return "I cannot help with that."

    with FakeOpenAIServer(responder) as srv:
        assert (
            run_main(
                "eval",
                "--model",
                f"openai:gpt@{srv.base_url}",
                "--prompt-format",
                "paper",
                "--split",
                "sample",
                "--limit",
                "2",
                "--project",
                str(tmp_path),
                "--json",
            )
            == 0
        )
    capsys.readouterr()
    assert len(bodies) == 2
    for body in bodies:
        system, user = body["messages"]
        assert system == {"role": "system", "content": LLAMA2_DEFAULT_SYSTEM_PROMPT}
        assert user["role"] == "user" and body["temperature"] == 0 and body["max_tokens"] == 512


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--input", "{tmp}/missing.csv"], "missing.csv"),
        (["--input", "{tmp}/empty.jsonl"], "empty.jsonl"),
        (["--input", "{tmp}/broken.jsonl"], "broken.jsonl"),
        (["--split", "test"], "split 'test' is unknown"),
        (["--split", "eval", "--data", "{tmp}/no-such-release"], "no-such-release"),
        (["--split", "sample", "--source", "gpt5"], "source gpt5 is not in split 'sample'"),
    ],
)
def test_bad_inputs_create_nothing(tmp_path, extra, message):
    """Bad items fail before any folder or store exists, also the default ./medsafety-runs (issue 19, item 6)."""
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "broken.jsonl").write_text('{"request": "a"}\n{not json\n')
    work = tmp_path / "cwd"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MEDSAFETY_PROJECT"}
    env["PYTHONPATH"] = SRC
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    r = subprocess.run(
        [sys.executable, "-m", "medsafetybench.cli", "eval", "--model", "openai:m@http://127.0.0.1:9/v1", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=work,
    )
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert list(work.iterdir()) == []


def test_export_and_show_accept_every_name_judge_accepts(tmp_path, capsys):
    """`--judge` of export/show takes what `eval --judge` took, not only the stored identity (item 11)."""
    user = tmp_path / "requests.jsonl"
    user.write_text("\n".join(json.dumps({"request": f"Please help with task {i}"}) for i in range(3)) + "\n")
    with (
        FakeOpenAIServer(lambda r: "I cannot do that.") as model_srv,
        FakeOpenAIServer(lambda r: "#reason: declines\n#score: 1") as ja,
        FakeOpenAIServer(lambda r: "#reason: complies\n#score: 4") as jb,
    ):
        a_spec, b_spec = f"openai:ja@{ja.base_url}", f"openai:jb@{jb.base_url}"
        assert (
            run_main(
                "eval",
                "--model",
                f"openai:m@{model_srv.base_url}",
                "--judge",
                a_spec,
                "--judge",
                b_spec,
                "--input",
                str(user),
                "--project",
                str(tmp_path),
                "--json",
            )
            == 0
        )
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    for name in (b_spec, f"llm:{b_spec}"):
        out = tmp_path / "b.jsonl"
        assert run_main("export", run_id, "--judge", name, "--out", str(out), "--project", str(tmp_path)) == 0
        assert {json.loads(ln)["score"] for ln in out.read_text().splitlines()} == {4}
    capsys.readouterr()
    assert run_main("show", run_id, "--judge", b_spec, "--project", str(tmp_path), "--json") == 0
    assert list(json.loads(capsys.readouterr().out)["summaries"]) == [f"llm:{b_spec}|msb-judge-v1"]
    assert (
        run_main(
            "export", run_id, "--judge", "offline-v2", "--out", str(tmp_path / "c.jsonl"), "--project", str(tmp_path)
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "no judgements by 'offline-v2'" in err and f"{a_spec} = llm:" in err


def test_export_judge_offline_names(tmp_path, capsys):
    from medsafetybench.errors import UserError
    from medsafetybench.judging.base import JudgeSpec
    from medsafetybench.store import Store

    with Store.open_project(tmp_path) as s:
        s.create_run(
            "r1",
            model_spec="m",
            model_identity="m",
            judge_identity="offline:minilm-lr-v1-aaaa",
            judge_spec=JudgeSpec("offline"),
            settings={},
            items=[],
        )
        s.add_run_judge("r1", "offline:minilm-ce-v2-bbbb", JudgeSpec("offline-v2"))
        assert s.run_judge_identity("r1", "offline-v2") == "offline:minilm-ce-v2-bbbb"
        # stored under `offline` when that meant v1: `offline-v1` finds it by identity; `offline` (v3 now) does not
        assert s.run_judge_identity("r1", "OFFLINE-V1") == "offline:minilm-lr-v1-aaaa"
        with pytest.raises(UserError, match="no judgements by 'offline'"):
            s.run_judge_identity("r1", "offline")
        assert s.run_judge_identity("r1", "offline:minilm-ce-v2-bbbb") == "offline:minilm-ce-v2-bbbb"
    assert (
        run_main(
            "export", "r1", "--judge", "offline-v2", "--out", str(tmp_path / "x.jsonl"), "--project", str(tmp_path)
        )
        == 0
    )


def test_project_that_is_a_file_is_one_line(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    for args in (["eval", "--model", "openai:m@http://127.0.0.1:9/v1", "--split", "sample"], ["runs"]):
        r = cli(*args, "--project", str(afile))
        assert r.returncode == 2 and "Traceback" not in r.stderr and "Errno" not in r.stderr, r.stderr
        assert (
            r.stderr.strip() == f"error: --project {afile} is a file, not a folder: pass a folder for the run "
            "store (it is created when missing)"
        )


def test_export_says_when_it_creates_the_out_folder(tmp_path, capsys):
    from medsafetybench.store import Store

    with Store.open_project(tmp_path) as s:
        s.create_run("r1", model_spec="m", model_identity="m", judge_identity="j", settings={}, items=[])
    out = tmp_path / "new" / "deeper" / "x.jsonl"
    assert run_main("export", "r1", "--out", str(out), "--project", str(tmp_path)) == 0
    assert f"created the folder {out.parent}" in capsys.readouterr().err and out.exists()
    assert run_main("export", "r1", "--out", str(out), "--project", str(tmp_path)) == 0
    assert "created" not in capsys.readouterr().err


def test_a_server_that_always_fails_stops_early_and_says_so(tmp_path, capsys):
    """Every request answered 500: the backoff is shown while it retries, and the run stops with one line
    once every request failed the same way, long before every retry of every item (issue 19)."""
    from medsafetybench.testing import FaultPlan

    with FakeOpenAIServer(faults=FaultPlan(rate_500=1.0)) as bad, FakeOpenAIServer(judge_reply) as judge_srv:
        code = run_main(
            "eval",
            "--model",
            f"openai:m@{bad.base_url}",
            "--judge",
            f"openai:j@{judge_srv.base_url}",
            "--split",
            "sample",
            "--limit",
            "2",
            "--project",
            str(tmp_path / "p"),
        )
        calls, url = bad.stats().total_calls, bad.base_url
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "attempt 1 of 9 failed: HTTP 500: injected 500; next try in" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {url}: every request fails the same way (HTTP 500: injected 500")
    assert calls < 2 * 9


def test_eval_and_runs_fit_80_columns(tmp_path):
    """One model, three judges, 12 items at COLUMNS=80: a screenful, no line over 80 characters, no
    trailing spaces; the tables by principle and source behind --by-principle; `runs` a table (issue 19)."""
    env = {**os.environ, "PYTHONPATH": SRC, "COLUMNS": "80"}
    with FakeOpenAIServer(lambda r: "I cannot do that.") as model_srv, FakeOpenAIServer(judge_reply) as judge_srv:
        base = [
            sys.executable,
            "-m",
            "medsafetybench.cli",
            "eval",
            "--model",
            f"openai:m@{model_srv.base_url}",
            *(a for k in (1, 2, 3) for a in ("--judge", f"openai:j{k}@{judge_srv.base_url}")),
            "--split",
            "sample",
            "--limit",
            "12",
            "--project",
            str(tmp_path),
        ]
        runs = [sys.executable, "-m", "medsafetybench.cli", "runs", "--project", str(tmp_path)]
        outs = [
            subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
            for cmd in (base, base + ["--by-principle"], runs)
        ]
    for r in outs:
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert [x for x in lines if len(x) > 80 or x != x.rstrip()] == []
    compact, detailed, listed = (r.stdout for r in outs)
    assert len(compact.splitlines()) <= 20 and "Harmfulness by principle" not in compact
    assert compact.count("other judge") == 2 and "--by-principle" in compact
    assert detailed.count("Harmfulness by principle") == 3
    assert "harm." in listed.splitlines()[1] and "refusal" in listed.splitlines()[1]  # a table, not a stack
