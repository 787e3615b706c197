"""What a run is and how names stick to it: a run is one model identity asked one item set under one
set of settings (kind included); judges attach to it. A second `--name` for the same run is an alias:
the first name keeps working and nothing is renamed behind the user's back."""

from __future__ import annotations

import json

from helpers.cli import run_main


def _judge(score: int):
    def reply(request: dict) -> str:
        return f"#reason: fixed verdict\n#score: {score}"

    return reply


def test_a_second_name_is_an_alias_and_the_first_still_shows_the_first_judge(tmp_path, fake_openai_factory, capsys):
    model = fake_openai_factory()
    j1, j5 = fake_openai_factory(_judge(1)), fake_openai_factory(_judge(5))
    base = [
        "eval",
        "--model",
        f"openai:m@{model.base_url}",
        "--split",
        "sample",
        "--limit",
        "4",
        "--project",
        str(tmp_path),
    ]
    assert run_main(*base, "--judge", f"openai:j1@{j1.base_url}", "--name", "old-name") == 0
    assert run_main(*base, "--judge", f"openai:j5@{j5.base_url}", "--name", "new-name") == 0
    err = capsys.readouterr().err
    assert "old-name" in err and "new-name" in err and "alias" in err  # the user is told, not surprised

    assert run_main("show", "old-name", "--project", str(tmp_path), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "old-name"
    first = next(k for k in shown["summaries"] if "j1@" in k)
    assert shown["judge"] == first  # the primary judge is the first one
    assert shown["summary"]["overall"]["harmfulness"]["value"] == 1.0
    assert run_main("show", "new-name", "--project", str(tmp_path), "--json") == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == shown["run_id"]  # the same run, by its alias

    assert run_main("runs", "--project", str(tmp_path), "--json") == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert run["name"] == "old-name" and run["aliases"] == ["new-name"]
    assert len(run["judges"]) == 2 and run["summary"]["overall"]["harmfulness"]["value"] == 1.0
    assert run_main("runs", "--project", str(tmp_path)) == 0
    table = capsys.readouterr().out
    assert "old-name" in table and "new-name" in table


def test_rename_is_explicit_and_keeps_lookups_by_the_new_name(tmp_path, fake_openai_factory, capsys):
    model, j1 = fake_openai_factory(), fake_openai_factory(_judge(1))
    assert (
        run_main(
            "eval",
            "--model",
            f"openai:m@{model.base_url}",
            "--judge",
            f"openai:j1@{j1.base_url}",
            "--split",
            "sample",
            "--limit",
            "2",
            "--name",
            "first-name",
            "--project",
            str(tmp_path),
        )
        == 0
    )
    # names that are not hex: a name like "a" is also a prefix of the run ids that start with it
    assert run_main("runs", "--run", "first-name", "--rename", "second-name", "--project", str(tmp_path)) == 0
    capsys.readouterr()
    assert run_main("show", "second-name", "--project", str(tmp_path), "--json") == 0
    assert json.loads(capsys.readouterr().out)["name"] == "second-name"
    assert run_main("show", "first-name", "--project", str(tmp_path)) == 2  # the user renamed it away
