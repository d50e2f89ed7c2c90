"""The ``conveyor`` command: a thin shell over :mod:`conveyor.api`.

This module holds the one place that turns exceptions into ``Error: ...`` and an exit
code: 0 success, 1 the run failed, 2 bad input or usage. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from rich.markup import escape

from conveyor import __version__
from conveyor.cli.output import console
from conveyor.config.secrets import scrub
from conveyor.errors import ConveyorError


@dataclass
class Options:
    """Global options every command sees."""

    project_dir: str
    verbosity: int
    debug: bool


_pass_options = click.make_pass_decorator(Options)


def pass_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Pass :class:`Options` to a command, which also accepts -v/-q after its name."""

    @click.option("-v", "--verbose", "more", count=True, help="More output; repeat for even more.")
    @click.option("-q", "--quiet", "less", count=True, help="Less output: no progress bars.")
    @_pass_options
    @functools.wraps(function)
    def wrapper(options: Options, *args: Any, more: int, less: int, **kwargs: Any) -> Any:
        options.verbosity += more - less
        return function(options, *args, **kwargs)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "-p",
    "--project",
    "project_dir",
    default=lambda: os.environ.get("CONVEYOR_PROJECT", "."),
    show_default="current folder or $CONVEYOR_PROJECT",
    help="The project folder (the one holding conveyor.yaml).",
)
@click.option("-v", "--verbose", count=True, help="More output; repeat for even more.")
@click.option("-q", "--quiet", count=True, help="Less output: no progress bars.")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(__version__, prog_name="conveyor")
@click.pass_context
def cli(ctx: click.Context, project_dir: str, verbose: int, quiet: int, debug: bool) -> None:
    """Conveyor: extract upstream tables into a Parquet lake, load a warehouse, build its SQL
    transformations in dependency order, validate everything, and run it on schedules.

    Selections (SELECTION) are globs over schema.table (sales.*, *.dim_*, or a bare schema
    such as sales), tag:NAME, +NAME (with everything upstream) and NAME+ (with everything
    downstream). Several terms form a union.
    """
    ctx.obj = Options(project_dir, verbose - quiet, debug)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="conveyor", standalone_mode=False)
    except click.exceptions.Abort:
        console.print("Aborted.")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConveyorError as exc:
        if debug:
            traceback.print_exc()
        console.print("[red bold]Error:[/] " + escape(scrub(exc.render())), highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("Interrupted.")
        sys.exit(130)
    except Exception as exc:  # a bug: say so briefly, show the traceback with --debug
        if debug:
            traceback.print_exc()
        console.print("[red bold]Internal error:[/] " + escape(scrub(f"{type(exc).__name__}: {exc}")))
        console.print("This is a bug in Conveyor. Run again with --debug for the traceback.")
        sys.exit(1)
    sys.exit(0)


def _register() -> None:
    from conveyor.cli import commands, runs_cmd

    for command in (*commands.COMMANDS, runs_cmd.runs):
        cli.add_command(command)


_register()
