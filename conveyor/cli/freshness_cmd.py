"""``conveyor freshness``: how old each source table's newest data is, against its design's thresholds."""

from __future__ import annotations

import click

from conveyor import api
from conveyor.cli.app import Options, pass_options, selection_argument
from conveyor.cli.output import print_json, print_table
from conveyor.errors import RunFailed
from conveyor.extract.freshness import too_old


@click.command()
@selection_argument
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
@pass_options
def freshness(options: Options, selection: tuple[str, ...], fmt: str) -> None:
    """Show how old the newest data of each source table of SELECTION (default: all) is.

    Per table: what the age is measured on (the newest incremental cursor value in the lake,
    or the last successful extract), that value, the age, the design's warn_after and
    error_after, and the status: ok, warn, error, or unknown (never extracted). Nothing
    upstream is read. The exit code is 1 if any table is at error (see docs/freshness.md).
    """
    project = api.open_project(options.project_dir)
    rows = api.freshness(project, selection)
    if fmt == "json":
        print_json([row.to_json() for row in rows])
    else:
        print_table(
            ["table", "measure", "newest", "age", "warn after", "error after", "status", "note"],
            [
                (
                    r.relation,
                    f"cursor {r.cursor}" if r.measure == "cursor" and r.cursor else r.measure,
                    r.newest.isoformat(sep=" ") if r.newest else "",
                    r.age_text,
                    r.warn_after or "",
                    r.error_after or "",
                    r.status,
                    r.note or "",
                )
                for r in rows
            ],
        )
    stale = too_old(rows)
    if stale:
        raise RunFailed(stale + ".", hint="Extract them, or find out why upstream stopped changing.")
