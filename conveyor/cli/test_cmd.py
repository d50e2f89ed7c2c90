"""``conveyor test``: run the data tests of a selection against a published warehouse."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import click
from rich.markup import escape

from conveyor import api
from conveyor.cli.app import Options, pass_options
from conveyor.cli.commands import _finish, env_option, format_option, jobs_option, selection_arg
from conveyor.cli.output import RichReporter, print_table, stdout


@click.command(name="test")
@selection_arg
@env_option
@jobs_option
@format_option
@pass_options
def test(options: Options, selection: tuple[str, ...], env: str | None, jobs: int | None, fmt: str) -> None:
    """Run the data tests of SELECTION (default: all) against an environment's published warehouse.

    Loads and updates run the same tests on their staging build before publishing; this
    command checks what is published now (after a fix, or on a schedule). A failed test of
    severity error makes the command exit 1; warn tests are reported only. Each failure
    shows up to 5 failing rows and the SQL that finds them (paste it into conveyor query).

    \b
    conveyor test
    conveyor test marts --env production --format json
    """
    project = api.open_project(options.project_dir)
    with RichReporter(-1 if fmt == "json" else options.verbosity) as reporter:
        outcome = api.test(project, selection, env=env, jobs=jobs, reporter=reporter)
    tests = outcome.tests or []
    if fmt == "json":
        from conveyor.cli.output import print_json

        print_json(
            {
                "run_id": outcome.run_id,
                "ok": outcome.ok,
                "tests": [_json(t) for t in tests],
                "results": outcome.results_path,
            }
        )
        if not outcome.ok:
            raise SystemExit(1)
        return
    if options.verbosity >= 0 and tests:
        rows = [[t.test.relation, t.test.name, t.status, f"{t.failures:,}" if t.failures else ""] for t in tests]
        print_table(["relation", "test", "status", "failures"], rows, drop_empty=False)
        print_failures([(t.test.relation, t.detail(), t.message) for t in tests if t.status in ("failed", "warned")])
    if not tests and options.verbosity >= 0:
        stdout.print("No data tests in the selection (see docs/tests.md to write some).")
    _finish(outcome, "table", options)


def print_failures(failures: Sequence[tuple[str, Mapping[str, Any], str | None]]) -> None:
    """Each failed test's failing rows (the first few) and the query that finds them all.

    ``failures``: (relation, test event detail, message) per test.
    """
    for relation, detail, message in failures:
        where = f" ({detail['location']})" if detail.get("location") else ""
        name = escape(str(detail.get("test")))
        stdout.print(f'\n[bold]{escape(relation)}[/] test "{name}": {escape(message or "")}{escape(where)}')
        rows = detail.get("rows") or []
        if rows:
            columns = list(rows[0])
            print_table(columns, [[_cell(r.get(c)) for c in columns] for r in rows], drop_empty=False)
        if detail.get("sql"):
            stdout.print("Find them all with: conveyor query " + escape(shlex.quote(" ".join(detail["sql"].split()))))


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _json(outcome: object) -> dict[str, object]:
    from conveyor.quality.run import TestOutcome

    assert isinstance(outcome, TestOutcome)
    return {
        "relation": outcome.test.relation,
        **outcome.detail(),
        "status": outcome.status,
        "message": outcome.message,
    }
