"""Every command is documented, and the commands that change something have a real --dry-run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from conveyor.cli.main import cli, main

#: commands that write to the lake, the warehouse or the tracking store
CHANGING = {("run",), ("extract",), ("load",), ("update",), ("upgrade",), ("unload",), ("pipeline", "run")}

#: commands whose output is only for people (help, a long-running process's log, a JSON Schema)
NOT_JSON = {("scheduler",), ("schema",), ("ui",)}  # servers (scheduler, ui) print no result; schema prints JSON


def walk(group: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, group
    if isinstance(group, click.Group):
        context = click.Context(group)
        for name in group.list_commands(context):  # the public API: lazy commands load here
            command = group.get_command(context, name)
            assert command is not None, name
            yield from walk(command, (*path, name))


COMMANDS = list(walk(cli))


def invoke(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``conveyor.cli.main.main`` in-process; return exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_the_command_tree_is_complete() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"run", "extract", "load", "ls", "validate", "schema", "runs", "runs show"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "conveyor" for p, _ in COMMANDS])
def test_every_command_has_help(path: tuple[str, ...], command: click.Command, capsys: pytest.CaptureFixture) -> None:
    assert (command.help or "").strip(), f"{' '.join(path)} has no help text"
    assert command.get_short_help_str().strip()
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"option {param.opts} of {' '.join(path)} has no help"
    code, out, err = invoke([*path, "--help"], capsys)
    assert code == 0, err
    assert out.startswith("Usage: conveyor")
    assert err == ""
    first_line = command.help.strip().splitlines()[0][:30]
    assert " ".join(first_line.split()) in " ".join(out.split())


@pytest.mark.parametrize("path", sorted(CHANGING))
def test_changing_commands_accept_dry_run(path: tuple[str, ...]) -> None:
    assert path in dict(COMMANDS), path
    command = dict(COMMANDS)[path]
    default = getattr(command, "default", None)
    if isinstance(command, click.Group) and default:
        command = command.commands[default]  # `conveyor extract ...` runs its default subcommand
    assert "--dry-run" in {opt for p in command.params for opt in p.opts}


def test_every_command_that_prints_offers_json() -> None:
    missing = [
        " ".join(path)
        for path, command in COMMANDS
        if path and not isinstance(command, click.Group) and path not in NOT_JSON
        and "--format" not in {opt for p in command.params for opt in p.opts}
    ]  # fmt: skip
    assert missing == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--dry-run"], ["Would extract 3 table(s)", "Would build 6 relation(s)", "view   mart.report"]),
        (["extract", "--dry-run"], ["Would extract 3 table(s): shop.customers, shop.orders, shop.products"]),
        (["extract", "--dry-run", "--tables", "orders"], ["Would extract 1 table(s): shop.orders"]),
        (["load", "--dry-run"], ["Would build 6 relation(s)", "source shop.customers"]),
        (["load", "--dry-run", "mart.report"], ["Would build 3 relation(s)", "ctas   mart.customer_totals"]),
        (["run", "--dry-run", "shop.orders"], ["Would extract 3 table(s)", "Would build 3 relation(s)"]),
        (["run", "--dry-run", "mart"], ["Would extract no table (the selection holds no source table).\n"]),
    ],
)
def test_dry_run_writes_nothing(
    project_dir: Path, argv: list[str], expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(str(p.relative_to(project_dir)) for p in project_dir.rglob("*"))
    code, out, err = invoke(["-p", str(project_dir), *argv], capsys)
    assert code == 0, err
    for text in expected:
        assert text in out
    if argv[0] != "extract":
        assert "warehouse.duckdb" in out
    after = sorted(str(p.relative_to(project_dir)) for p in project_dir.rglob("*"))
    assert after == before
    assert not (project_dir / "lake").exists()
    assert not (project_dir / "warehouse.duckdb").exists()
    assert not (project_dir / ".conveyor").exists()


def test_ls_json_has_name_kind_and_level(project_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(["-p", str(project_dir), "ls", "--format", "json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["name"], r["kind"], r["level"]) for r in rows] == [
        ("shop.customers", "source", 0),
        ("shop.orders", "source", 0),
        ("shop.products", "source", 0),
        ("mart.customer_totals", "ctas", 1),
        ("mart.top_customers", "ctas", 2),
        ("mart.report", "view", 3),
    ]
    assert rows[3]["depends_on"] == ["shop.customers", "shop.orders"]
    assert rows[5]["file"] == "schemas/mart/report.yaml"


@pytest.mark.parametrize(
    "argv",
    [
        ["ls", "--format", "json", "-p", "{project}"],
        ["ls", "--project", "{project}", "--format", "json"],
        ["-p", "/nonexistent", "ls", "-p", "{project}", "--format", "json"],  # the nearer one wins
    ],
    ids=["after", "long-after", "both"],
)
def test_global_options_work_after_the_command(
    project_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    before = invoke(["-p", str(project_dir), "ls", "--format", "json"], capsys)
    after = invoke([arg.format(project=project_dir) for arg in argv], capsys)
    assert after == before and before[0] == 0


def test_every_command_takes_the_global_options() -> None:
    for path, command in COMMANDS:
        if isinstance(command, click.Group) or not path or path == ("schema",):
            continue
        names = {name for param in command.params for name in param.opts}
        assert {"-p", "--project", "-q", "-v", "--debug"} <= names, " ".join(path)


def test_exclude_and_intersection_on_the_command_line(project_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def names(*argv: str) -> list[str]:
        code, out, err = invoke(["-p", str(project_dir), "ls", *argv, "--format", "json"], capsys)
        assert code == 0, err
        return [row["name"] for row in json.loads(out)]

    assert names("mart", "--exclude", "mart.report", "-x", "mart.top_customers") == ["mart.customer_totals"]
    assert names("+mart.report", "!shop") == ["mart.customer_totals", "mart.top_customers", "mart.report"]
    assert names("1+mart.top_customers") == ["mart.customer_totals", "mart.top_customers"]
    assert names("mart.customer_totals+,mart.top_customers+") == ["mart.top_customers", "mart.report"]


def test_validate_ok(project_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(["-p", str(project_dir), "validate", "--format", "json", "--skip-sources"], capsys)
    assert code == 0
    data = json.loads(out)
    assert (data["ok"], data["relations"], data["problems"]) == (True, 6, [])
    # the fixture's hand-written designs differ a little from its SQLite upstream: warnings only
    code, out, _ = invoke(["-p", str(project_dir), "validate", "--format", "json"], capsys)
    assert code == 0
    assert {p["severity"] for p in json.loads(out)["problems"]} == {"warning"}


def test_ls_upstream_of_a_view_in_order(project_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(["-p", str(project_dir), "ls", "+mart.report"], capsys)
    assert code == 0, err
    # plain text in a pipe: a header, then one relation a line, columns aligned with spaces
    header, *lines = out.splitlines()
    assert header.split() == ["#", "relation", "kind", "level", "depends", "on"]
    assert "│" not in out and "\x1b" not in out
    rows = [line.split(maxsplit=4) for line in lines]
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5"]
    assert [row[3] for row in rows] == ["0", "0", "1", "2", "3"]
    assert [row[1] for row in rows] == [
        "shop.customers",
        "shop.orders",
        "mart.customer_totals",
        "mart.top_customers",
        "mart.report",
    ]
    assert "shop.products" not in out
