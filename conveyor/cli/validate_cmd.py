"""``conveyor validate``: every problem of the project, grouped by relation, with file:line."""

from __future__ import annotations

from collections.abc import Sequence

import click
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from conveyor.cli.app import Options, pass_options, selection_argument
from conveyor.cli.output import print_json, stdout
from conveyor.errors import UserError
from conveyor.validate import Problem, Report
from conveyor.validate import validate as run_validation

_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}


@click.command(name="validate")
@selection_argument
@click.option(
    "--with-warehouse",
    "warehouse",
    metavar="ENV",
    help="Also build the selection empty in a throwaway copy of environment ENV, so the warehouse compiles "
    "every statement and the output columns are compared with the designs.",
)
@click.option(
    "--env",
    "-e",
    "environment",
    metavar="NAME",
    help="Check warehouse limits (types, name lengths, file places) for this environment only (default: all).",
)
@click.option("--skip-sources", is_flag=True, help="Do not compare source tables with their live upstream tables.")
@click.option(
    "--skip-sql",
    is_flag=True,
    help="Do not bind or compile the queries (even with --with-warehouse); compare select lists by name only.",
)
@click.option("--no-cache", is_flag=True, help="Parse every file again, ignoring the parse cache in .conveyor/cache/.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
@pass_options
def validate(
    options: Options,
    selection: tuple[str, ...],
    warehouse: str | None,
    environment: str | None,
    skip_sources: bool,
    skip_sql: bool,
    no_cache: bool,
    fmt: str,
) -> None:
    """Check the project before it runs: designs, dependencies, SQL and upstream tables.

    Every problem is reported at once, grouped by relation, each with its file and line, a
    code and a severity. Upstream tables of the selected source designs are compared with
    their designs (drift); --with-warehouse ENV also compiles every statement in a throwaway
    warehouse. The exit code is 2 when there is an error, 0 when there are only warnings.
    """
    report = run_validation(
        options.project_dir,
        selection,
        sources=not skip_sources,
        sql=not skip_sql,
        warehouse=warehouse,
        cache=not no_cache,
        environment=environment,
    )
    if fmt == "json":
        print_json(report.to_json())
    else:
        render(report, options.verbosity)
    if not report.ok:
        count = len(report.errors)
        raise UserError(
            f"validation found {count} error{'s' if count != 1 else ''}.",
            hint="Fix them and run conveyor validate again." if fmt == "json" else None,
            code="validation-failed",
        )


def render(report: Report, verbosity: int = 0) -> None:
    """Print the report for people: groups per relation, a drift table where upstream changed, a summary."""
    for relation, problems in report.by_relation().items():
        shown = [p for p in problems if p.severity != "info" or verbosity > 0]
        if not shown:
            continue
        stdout.print(f"[bold]{escape(relation or 'project')}[/]")
        for found in shown:
            _problem(found)
        drift = [p for p in shown if p.check == "sources" and "change" in p.details]
        if drift:
            _drift_table(drift)
        stdout.print()
    for note in report.notes:
        if verbosity >= 0:
            stdout.print(f"[dim]Note: {escape(note)}[/]")
    stdout.print(_summary(report))


def _problem(found: Problem) -> None:
    style = _STYLE[found.severity]
    where = f"{found.location}: " if found.location else ""
    stdout.print(
        f"  [{style}]{found.severity:<7}[/] {escape(where + found.message)} [dim]\\[{found.code}][/]",
        highlight=False,
    )
    if found.hint:
        stdout.print(f"          [dim]{escape(found.hint)}[/]", highlight=False)


def _drift_table(problems: Sequence[Problem]) -> None:
    table = Table(show_edge=False, header_style="bold", pad_edge=False, box=None, padding=(0, 2))
    for column in ("column", "change", "design", "upstream", "severity"):
        table.add_column(column)
    for found in problems:
        row = found.details
        style = _STYLE[found.severity]
        table.add_row(
            escape(str(row.get("column", ""))),
            escape(str(row.get("change", ""))),
            escape(str(row.get("design", ""))),
            escape(str(row.get("upstream", ""))),
            f"[{style}]{found.severity}[/]",
        )
    stdout.print("  upstream changes:")
    stdout.print(Padding(table, (0, 0, 0, 4), expand=False))


def _summary(report: Report) -> str:
    errors, warnings = len(report.errors), len(report.warnings)
    checked = f"{report.relations} relation(s) checked ({', '.join(report.checks)}) in {report.seconds:.2f} s"
    if not errors and not warnings:
        return f"[green]OK[/]: {checked}, no problems."
    counts = f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
    if errors:
        return f"[red]✗ {counts}[/]: {checked}."
    return f"[yellow]OK with {counts}[/]: {checked}."
