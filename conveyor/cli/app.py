"""The ``conveyor`` click group and the options every command shares.

Command modules import from here; :mod:`conveyor.cli.main` puts them together.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from conveyor import __version__


@dataclass
class Options:
    """Global options every command sees."""

    project_dir: str
    verbosity: int
    debug: bool


_pass_options = click.make_pass_decorator(Options)


QUIET_HELP = "Less output: no progress bars, only the outcome; -qq: nothing but errors."


def pass_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Pass :class:`Options` to a command, which also accepts the global options after its name.

    ``conveyor -p DIR ls`` and ``conveyor ls -p DIR`` mean the same: users type options
    where they think of them, and the README's examples put them either side.
    """

    @click.option(
        "-p", "--project", "project", default=None, help="The project folder (the one holding conveyor.yaml)."
    )
    @click.option("-v", "--verbose", "more", count=True, help="More output; repeat for even more.")
    @click.option("-q", "--quiet", "less", count=True, help=QUIET_HELP)
    @click.option("--debug", "debug", is_flag=True, help="Show tracebacks of errors.")
    @_pass_options
    @functools.wraps(function)
    def wrapper(
        options: Options, *args: Any, project: str | None, more: int, less: int, debug: bool, **kwargs: Any
    ) -> Any:
        options.verbosity += more - less
        options.debug = options.debug or debug
        if project is not None:
            options.project_dir = project
        return function(options, *args, **kwargs)

    return wrapper


def selection_argument(function: Callable[..., Any]) -> Callable[..., Any]:
    """The SELECTION argument, and ``--exclude TERM`` (repeatable), which removes what TERM selects.

    Excluded terms travel in the selection as ``!TERM`` (see conveyor/graph/selection.py),
    so every command and the Python API understand them without another parameter.
    """

    @click.argument("selection", nargs=-1)
    @click.option(
        "--exclude",
        "-x",
        "exclude",
        multiple=True,
        metavar="TERM",
        help="Leave out what TERM selects (same syntax as SELECTION); repeatable.",
    )
    @functools.wraps(function)
    def wrapper(*args: Any, selection: tuple[str, ...], exclude: tuple[str, ...], **kwargs: Any) -> Any:
        return function(*args, selection=(*selection, *(f"!{term}" for term in exclude)), **kwargs)

    return wrapper


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives ("module:attribute") and the first paragraph of its help.

    The summary lets ``conveyor --help`` list every command without importing any of them
    (a test checks that it matches the command's own help).
    """

    target: str
    summary: str


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command runs.

    Start-up matters for a CLI: importing every command (and with them DuckDB, pyarrow,
    apprise, httpx ...) costs about a second that ``conveyor --help``, ``ls`` or ``runs``
    never needs.
    """

    def __init__(self, *args: Any, lazy: dict[str, LazyCommand] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        """Command name -> where it lives and what it does."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module, _, attribute = self.lazy[name].target.partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the summaries: no command module is imported for ``--help``."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands or name not in self.lazy:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, click.Command(name, help=self.lazy[name].summary).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "-p",
    "--project",
    "project_dir",
    default=lambda: os.environ.get("CONVEYOR_PROJECT", "."),
    show_default="current folder or $CONVEYOR_PROJECT",
    help="The project folder (the one holding conveyor.yaml).",
)
@click.option("-v", "--verbose", count=True, help="More output; repeat for even more.")
@click.option("-q", "--quiet", count=True, help=QUIET_HELP)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(__version__, prog_name="conveyor")
@click.pass_context
def cli(ctx: click.Context, project_dir: str, verbose: int, quiet: int, debug: bool) -> None:
    """Conveyor: extract upstream tables into a Parquet lake, load a warehouse, build its SQL
    transformations in dependency order, validate everything, and run it on schedules.

    Selections (SELECTION) are globs over schema.table (sales.*, *.dim_*, or a bare schema
    such as sales), tag:NAME, +NAME (with everything upstream), NAME+ (downstream), 2+NAME and
    NAME+1 (to a depth), @NAME (downstream and all it needs). Terms separated by spaces form a
    union, a comma intersects (tag:finance,marts), and --exclude TERM leaves TERM out.
    """
    ctx.obj = Options(project_dir, verbose - quiet, debug)
