"""``conveyor import-dbt``: a dbt project as Conveyor designs, SQL and tests (a thin shell over
:func:`conveyor.api.import_dbt`)."""

from __future__ import annotations

import click
from rich.markup import escape

from conveyor import api
from conveyor.cli.app import Options, pass_options
from conveyor.cli.output import print_json, print_table, stdout
from conveyor.dbtimport import ImportReport
from conveyor.errors import ConveyorError


@click.command(name="import-dbt")
@click.argument("path", type=click.Path(file_okay=False, dir_okay=True))
@click.option(
    "--into",
    metavar="DIR",
    help="The Conveyor project folder to write into (default: the project folder, -p, or here).",
)
@click.option(
    "--schema",
    metavar="NAME",
    help="The schema of models without a schema config, as dbt's target schema (default: the dbt project's name).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite files that exist already.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
@pass_options
def import_dbt(
    options: Options, path: str, into: str | None, schema: str | None, dry_run: bool, force: bool, fmt: str
) -> None:
    """Convert a dbt project whose models use only ref() and source() into designs, SQL and tests.

    PATH is the folder holding dbt_project.yml. Each model becomes schemas/<schema>/<table>.yaml
    and .sql (view -> view, table -> ctas, incremental -> ctas rebuilt whole), each source
    table a source design, the generic tests unique, not_null, accepted_values and
    relationships become design tests (with severity and where), and singular tests become
    assertions in tests/. Anything else (other Jinja, macros, other tests, snapshots, seeds)
    is listed with file:line and why; a model that cannot convert is skipped, and so are the
    models that ref it. Existing files are kept unless --force. Exit code 0 when everything
    converted, 1 when something did not, 2 for bad input.
    """
    report = api.import_dbt(path, into or options.project_dir, schema, dry_run=dry_run, force=force)
    if fmt == "json":
        print_json(report.to_json())
    elif options.verbosity >= 0:
        _print_report(report)
    if not report.ok:
        shown = "listed above" if fmt == "json" or options.verbosity >= 0 else "run without -q to list them"
        raise ConveyorError(
            f"{len(report.not_converted)} piece(s) of the dbt project were not converted ({shown}).",
            hint="Rewrite them in SQL, or leave them out; the rest was " + ("planned." if dry_run else "written."),
            code="import-incomplete",
        )


def _print_report(report: ImportReport) -> None:
    verb = "Would write" if report.dry_run else "Wrote"
    stdout.print(
        escape(
            f"{verb} {len(report.files)} file(s) into {report.into} from dbt project {report.project}: "
            f"{len(report.models)} model(s), {len(report.sources)} source table(s), {report.tests} test(s), "
            f"{len(report.assertions)} assertion(s)."
        )
    )
    if report.models:
        rows = [(m.model, m.relation, m.kind, m.materialized) for m in report.models]
        print_table(("model", "relation", "kind", "dbt materialized"), rows)
    if report.not_converted:
        stdout.print()
        pieces = [(i.where, i.what, i.why) for i in report.not_converted]
        print_table(("where", "what", "why not converted"), pieces, title="Not converted")
    if report.notes:
        stdout.print()
        notes = [(i.where, i.what, i.why) for i in report.notes]
        print_table(("where", "what", "note"), notes, title="Notes")
    if report.conveyor_yaml:
        stdout.print("\nAdd to conveyor.yaml (the database dbt read each source from):")
        stdout.print(escape(report.conveyor_yaml.rstrip()))
    if report.next_steps:
        stdout.print("\nNext: " + escape("; then ".join(report.next_steps)) + ".")
