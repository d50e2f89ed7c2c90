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
from conveyor.cli.app import Options, cli, pass_options
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
    console.print(f"Cancelled by {signal.Signals(exc.signum).name}.")
    sys.exit(exc.exit_code)


def _print_traceback() -> None:
    """The traceback of the exception being handled, with secrets scrubbed (frames show DSNs)."""
    sys.stderr.write(scrub(traceback.format_exc()))
    sys.stderr.flush()


# commands are imported when they run (see LazyGroup)
cli.lazy = {
    **{
        name: f"conveyor.cli.commands:{attr}"
        for name, attr in (
            ("run", "run"),
            ("extract", "extract"),
            ("load", "load"),
            ("update", "update"),
            ("upgrade", "upgrade"),
            ("unload", "unload"),
            ("ls", "ls"),
            ("schema", "schema"),
            ("show", "show"),
        )
    },
    "runs": "conveyor.cli.runs_cmd:runs",
    "validate": "conveyor.cli.validate_cmd:validate",
    "bootstrap": "conveyor.cli.bootstrap_cmd:bootstrap",
    "pipeline": "conveyor.cli.pipeline_cmd:pipeline",
    "scheduler": "conveyor.cli.pipeline_cmd:scheduler",
}
