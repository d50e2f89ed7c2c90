"""``conveyor ls``: the relations a selection resolves to, as aligned plain text or JSON.

The listing is written as plain text, columns aligned with spaces, one relation a line, so it
reads the same in a pipe (``| grep``, ``| cut``) as on a terminal and costs next to nothing
at 20,000 rows (a rich table spent most of the command's time measuring and wrapping cells).
Nothing is truncated: names, numbers and dependency lists are printed whole; a terminal
wraps a long line itself. On a terminal the header is bold (unless ``NO_COLOR`` is set).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli.app import Options, pass_options, selection_argument
from conveyor.cli.plain import aligned

if TYPE_CHECKING:
    from conveyor.project import Project

HEADER = ("#", "relation", "kind", "level", "depends on")
_RIGHT = frozenset({0, 3})
"""The columns aligned right (numbers)."""


@click.command(name="ls")
@selection_argument
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
@pass_options
def ls(options: Options, selection: tuple[str, ...], fmt: str) -> None:
    """List the relations SELECTION resolves to, in execution order, with kind and level."""
    from conveyor.project import Project
    from conveyor.project.loader import paused_gc

    with paused_gc():  # the rows, like the project, stay alive to the end (see paused_gc)
        _list(Project.load(options.project_dir), selection, fmt)


def _list(project: Project, selection: Sequence[str], fmt: str) -> None:
    levels = project.dag.levels()
    chosen = project.select(selection)
    if fmt == "json":
        rows: list[dict[str, Any]] = [
            {
                "name": r.name,
                "kind": r.kind,
                "level": levels[r.name],
                "depends_on": r.dependencies,
                "tags": r.design.tags,
                "source": r.source,
                "file": str(r.doc.display),
            }
            for r in chosen
        ]
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    lines = [
        (str(i), r.name, r.kind, str(levels[r.name]), ", ".join(r.dependencies)) for i, r in enumerate(chosen, start=1)
    ]
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    sys.stdout.write(aligned(HEADER, lines, right=_RIGHT, bold=bold))
