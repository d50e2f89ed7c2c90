"""The ``conveyor`` command: a thin shell over :mod:`conveyor.api`.

This module holds the one place that turns exceptions into ``Error: ...`` and an exit
code: 0 success, 1 the run failed, 2 bad input or usage, 130 cancelled by Ctrl-C (SIGINT),
143 cancelled by SIGTERM (see conveyor/cancel.py). ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import signal
import sys
import traceback
from typing import NoReturn

import click
from rich.markup import escape

from conveyor import cancel
from conveyor.cli.app import LazyCommand, Options, cli, pass_options
from conveyor.cli.output import configure_logging, console
from conveyor.config.secrets import scrub
from conveyor.errors import ConveyorError

__all__ = ["Options", "cli", "main", "pass_options"]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    configure_logging()
    cancel.reset()
    restore = cancel.install_handlers()  # SIGTERM, like Ctrl-C, cancels the statements in flight
    try:
        cli.main(args=argv, prog_name="conveyor", standalone_mode=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, cancel.Interrupted):  # click turns KeyboardInterrupt into Abort
            _cancelled(exc.__cause__)
        console.print("Aborted.")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConveyorError as exc:
        if debug:
            _print_traceback()
        console.print("[red bold]Error:[/] " + escape(scrub(exc.render())), highlight=False)
        sys.exit(exc.exit_code)
    except cancel.Interrupted as exc:
        _cancelled(exc)
    except KeyboardInterrupt:
        console.print("Interrupted.")
        sys.exit(130)
    except Exception as exc:  # a bug: say so briefly, show the traceback with --debug
        if debug:
            _print_traceback()
        console.print("[red bold]Internal error:[/] " + escape(scrub(f"{type(exc).__name__}: {exc}")))
        console.print("This is a bug in Conveyor. Run again with --debug for the traceback.")
        sys.exit(1)
    finally:
        restore()
    sys.exit(0)


def _cancelled(exc: cancel.Interrupted) -> NoReturn:
    console.print(
        f"Cancelled by {signal.Signals(exc.signum).name}: nothing half-done was published. "
        '"conveyor runs show last" shows what finished; run the command again to go on.'
    )
    sys.exit(exc.exit_code)


def _print_traceback() -> None:
    """The traceback of the exception being handled, with secrets scrubbed (frames show DSNs)."""
    sys.stderr.write(scrub(traceback.format_exc()))
    sys.stderr.flush()


# commands are imported when they run (see LazyGroup); the summaries are their help's first paragraph
cli.lazy = {
    name: LazyCommand(target, summary)
    for name, target, summary in (
        (
            "bootstrap",
            "conveyor.cli.bootstrap_cmd:bootstrap",
            "Write table designs (schemas/<target_schema>/<table>.yaml) for upstream tables.",
        ),
        (
            "extract",
            "conveyor.cli.commands:extract",
            "Extract the source tables of SELECTION (default: all) from upstream into the lake, or show the "
            "extract tracking table.",
        ),
        (
            "freshness",
            "conveyor.cli.freshness_cmd:freshness",
            "Show how old the newest data of each source table of SELECTION (default: all) is.",
        ),
        (
            "import-dbt",
            "conveyor.cli.import_dbt_cmd:import_dbt",
            "Convert a dbt project whose models use only ref() and source() into designs, SQL and tests.",
        ),
        (
            "init",
            "conveyor.cli.init_cmd:init",
            "Create a project in FOLDER (default: here) that reads the upstream database DSN.",
        ),
        (
            "load",
            "conveyor.cli.commands:load",
            "Rebuild the schemas of SELECTION in a warehouse from the latest extracts, then publish.",
        ),
        (
            "ls",
            "conveyor.cli.ls_cmd:ls",
            "List the relations SELECTION resolves to, in execution order, with kind and level.",
        ),
        (
            "pipeline",
            "conveyor.cli.pipeline_cmd:pipeline",
            "Define, install and run scheduled pipelines (see docs/pipelines.md).",
        ),
        (
            "query",
            "conveyor.cli.query_cmd:query",
            "Run one read-only SQL query against an environment's published warehouse and print the rows.",
        ),
        (
            "run",
            "conveyor.cli.commands:run",
            "Extract, load, build and publish: the whole ETL for SELECTION (default: everything).",
        ),
        (
            "runs",
            "conveyor.cli.runs_cmd:runs",
            "List recent runs, newest first. `conveyor runs show RUN` shows one in detail.",
        ),
        (
            "scheduler",
            "conveyor.cli.pipeline_cmd:scheduler",
            "Run installed pipelines at their times, until stopped (SIGTERM or Ctrl-C).",
        ),
        (
            "schema",
            "conveyor.cli.commands:schema",
            "Print the JSON Schema of conveyor.yaml (settings), table designs (design) or run results (results).",
        ),
        (
            "show",
            "conveyor.cli.commands:show",
            "Show what Conveyor would run: DDL of relations.",
        ),
        (
            "test",
            "conveyor.cli.test_cmd:test",
            "Run the data tests of SELECTION (default: all) against an environment's published warehouse.",
        ),
        (
            "ui",
            "conveyor.cli.ui_cmd:ui",
            "Serve a web dashboard of the project's runs, with each run's timeline, errors and tests.",
        ),
        (
            "unload",
            "conveyor.cli.commands:unload",
            "Export published relations of SELECTION into the lake as Parquet plus manifest.",
        ),
        (
            "update",
            "conveyor.cli.commands:update",
            "Refresh SELECTION and everything downstream of it in place, in one transaction.",
        ),
        (
            "upgrade",
            "conveyor.cli.commands:upgrade",
            "Drop and rebuild SELECTION and its dependents in place: quick, for development, not atomic.",
        ),
        (
            "validate",
            "conveyor.cli.validate_cmd:validate",
            "Check the project before it runs: designs, dependencies, SQL and upstream tables.",
        ),
    )
}
