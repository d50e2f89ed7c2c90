"""``conveyor init``: start a project of your own."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from conveyor.cli.app import Options, pass_options
from conveyor.cli.output import print_json, stdout


@click.command(name="init")
@click.argument("folder", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dsn", required=True, help="The upstream database: postgresql://..., mysql://... or a SQLite file.")
@click.option("--name", help="The project's name (default: the folder's name).")
@click.option("--source", help="The source's name, also its warehouse schema (default: the database's name).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
@pass_options
def init(options: Options, folder: Path, dsn: str, name: str | None, source: str | None, fmt: str) -> None:
    """Create a project in FOLDER (default: here) that reads the upstream database DSN.

    It writes conveyor.yaml (the source, a DuckDB warehouse, a tracking store), .gitignore,
    the DSN in .env (git-ignored; conveyor.yaml names it as ${VAR}) and a .env.example to
    commit, a sample transformation, and a nightly pipeline. Nothing is written when FOLDER
    already holds a project.
    """
    from conveyor.project.scaffold import scaffold

    made = scaffold(folder, dsn=dsn, name=name, source=source)
    if fmt == "json":
        print_json({"folder": str(folder), "source": made.source, "type": made.source_type, "written": made.written})
        return
    where = escape(str(folder))
    stdout.print(f"Created a Conveyor project in {where} reading {made.source_type} source {made.source}:")
    for path in made.written:
        stdout.print(f"  {escape(path)}")
    stdout.print("Next:")
    for step in made.next_steps:
        stdout.print(f"  {escape(step)}", highlight=False)
