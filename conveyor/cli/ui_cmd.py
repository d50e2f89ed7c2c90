"""``conveyor ui``: the web dashboard of the project's runs."""

from __future__ import annotations

import contextlib
import os

import click

from conveyor.cli.app import Options, pass_options
from conveyor.cli.output import stdout
from conveyor.errors import ConveyorError, UserError
from conveyor.project import Project


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8086, show_default=True, help="The port (0: any free one)."
)
@pass_options
def ui(options: Options, host: str, port: int) -> None:
    """Serve a web dashboard of the project's runs, with each run's timeline, errors and tests.

    It reads the project's tracking store (SQLite or PostgreSQL), like `conveyor runs`, and
    listens on 127.0.0.1 unless --host says otherwise: anyone who can reach the address can
    read the run history. Actions (pausing a pipeline) need the token in the environment
    variable CONVEYOR_UI_TOKEN (at least 16 characters), sent as `Authorization: Bearer
    TOKEN`; without it the dashboard is read-only. Ctrl-C stops it. See docs/ui.md.
    """
    from conveyor.cli.runs_cmd import _project
    from conveyor.web.security import MIN_TOKEN_LENGTH, TOKEN_VARIABLE, is_loopback
    from conveyor.web.server import bind, serve

    token = os.environ.get(TOKEN_VARIABLE) or None
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise UserError(
            f"{TOKEN_VARIABLE} is {len(token)} characters long; a token that short can be guessed.",
            hint=f"Use at least {MIN_TOKEN_LENGTH} random characters, e.g. from `openssl rand -hex 16`.",
        )
    project = _project(options.project_dir)
    register_secrets(project)
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host

    def started() -> None:
        stdout.print(
            f"Conveyor dashboard of {project.settings.name}: http://{shown_host}:{bound_port}/  (Ctrl-C stops it)",
            highlight=False,
            soft_wrap=True,
        )
        if not is_loopback(host):
            stdout.print(f"Listening on {host}: anyone who can reach it can read the run history.", highlight=False)
        stdout.print(
            "Actions are on: they need the token of CONVEYOR_UI_TOKEN."
            if token
            else "Read-only: set CONVEYOR_UI_TOKEN to allow actions.",
            highlight=False,
        )

    serve(project, sock, token=token, host=host, started=started)
    stdout.print("Stopped.")


def register_secrets(project: Project) -> None:
    """Resolve the project's DSNs once, so that their passwords are scrubbed from what pages show.

    Errors recorded by runs are scrubbed when written; this covers texts that still hold a
    password of a source or environment (a DSN that cannot be resolved here is skipped).
    """
    for name in project.settings.sources:
        with contextlib.suppress(ConveyorError):
            project.source_dsn(name)
    for name in project.settings.environments:
        with contextlib.suppress(ConveyorError):
            project.environment_dsn(name)
