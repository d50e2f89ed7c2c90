"""``conveyor bootstrap``: write table designs from the upstream catalogs (a thin shell over
:func:`conveyor.bootstrap.bootstrap`)."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.syntax import Syntax

from conveyor import api
from conveyor.bootstrap import BootstrapReport, TableReport
from conveyor.cli.app import Options, pass_options
from conveyor.cli.output import console, print_json, print_table, stdout
from conveyor.errors import ConveyorError

_WOULD = {"created": "would create", "updated": "would update"}


@click.command(name="bootstrap")
@click.argument("selection", nargs=-1)
@click.option("--update", is_flag=True, help="Merge upstream changes into existing designs, keeping hand edits.")
@click.option("--dry-run", is_flag=True, help="Show what would be created or updated; write nothing.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
@pass_options
def bootstrap(options: Options, selection: tuple[str, ...], update: bool, dry_run: bool, fmt: str) -> None:
    """Write table designs (schemas/<target_schema>/<table>.yaml) for upstream tables.

    SELECTION: source names, or globs over "<target_schema>.<table>" (the names the designs
    get); default: every source. Tables come through each source's include/exclude globs.
    An existing design is left alone unless --update is given; then upstream columns, types,
    nullability and keys are merged in and hand edits (descriptions, skipped, extract, tags,
    comments ...) are kept. Exit code 1 if any table failed.
    """
    project = api.open_project(options.project_dir)
    report = api.bootstrap(project, selection, update=update, dry_run=dry_run)
    if fmt == "json":
        print_json(report.to_json())
    elif options.verbosity >= 0:
        _print_report(report)
    for warning in report.warnings:
        console.print("[yellow]Warning:[/] " + escape(warning))
    if not report.ok:
        names = ", ".join(t.table for t in report.failed)
        raise ConveyorError(
            f"bootstrap failed for {len(report.failed)} table(s): {names}.",
            hint="See the notes above; the other tables were handled.",
            code="bootstrap-failed",
        )


def _action(table: TableReport, dry_run: bool) -> str:
    if table.action == "exists":
        return "exists (use --update)"
    return _WOULD.get(table.action, table.action) if dry_run else table.action


def _notes(table: TableReport) -> str:
    parts = [", ".join(table.changes), table.error or "", *table.notes]
    return "; ".join(p.rstrip(".") for p in parts if p and p != "exists (use --update)")


def _print_report(report: BootstrapReport) -> None:
    if not report.tables:
        stdout.print("No upstream tables selected.")
    else:
        print_table(
            ["table", "action", "columns", "notes"],
            [(t.table, _action(t, report.dry_run), t.columns, _notes(t)) for t in report.tables],
        )
    counts = report.counts()
    if report.dry_run:
        counts = {_WOULD.get(a, a): n for a, n in counts.items()}
    if counts:
        stdout.print(", ".join(f"{n} {a}" for a, n in counts.items()))
    for table in report.tables:
        if table.diff:
            stdout.print()
            stdout.print(Syntax(table.diff, "diff", theme="ansi_dark", background_color="default"))
    if report.dry_run:
        stdout.print("Dry run: nothing was written.")
