"""``conveyor runs``: run history from the tracking store."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from datetime import datetime
from typing import Any

import click
from rich.markup import escape

from conveyor import api
from conveyor.cli.app import Options, pass_options
from conveyor.cli.output import first_line, print_json, print_table, stdout
from conveyor.errors import ProjectError, RunFailed
from conveyor.project import Project
from conveyor.tracking.models import EventRow

format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)


def _project(path: str) -> Project:
    """The project, even one with a broken file: its run history must stay readable."""
    try:
        return api.open_project(path)
    except ProjectError:
        loaded = Project.collect(path)
        if loaded.project is None:
            raise
        return loaded.project


def _row(obj: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dataclasses.asdict(obj).items()}


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} s"


@click.group(invoke_without_command=True)
@click.option("--limit", "-n", type=click.IntRange(1, 10_000), default=20, show_default=True, help="How many runs.")
@click.option(
    "--status",
    type=click.Choice(["running", "succeeded", "failed", "cancelled", "abandoned"]),
    help="Only these (abandoned: its process died without recording an end).",
)
@click.option("--command", "command_name", help="Only runs of this command (run, extract, load ...).")
@click.option("--pipeline", "pipeline_name", help="Only runs of this pipeline.")
@click.option("--env", "-e", "environment", help="Only runs that wrote this environment (in any step).")
@format_option
@pass_options
@click.pass_context
def runs(
    ctx: click.Context,
    options: Options,
    limit: int,
    status: str | None,
    command_name: str | None,
    pipeline_name: str | None,
    environment: str | None,
    fmt: str,
) -> None:
    """List recent runs, newest first. `conveyor runs show RUN` shows one in detail."""
    if ctx.invoked_subcommand is not None:
        return
    project = _project(options.project_dir)
    found = api.runs(
        project, limit=limit, status=status, command=command_name, pipeline=pipeline_name, environment=environment
    )
    if fmt == "json":
        print_json([_row(r) for r in found])
        return
    print_table(
        ["run", "command", "env", "status", "started", "duration", "error"],
        [
            (
                r.run_id,
                r.command,
                _environments(r),
                r.status,
                _when(r.started_at),
                _seconds(r.duration_s),
                first_line(r.error),
            )
            for r in found
        ],
    )


def _environments(run: Any) -> str:
    """The environments a run wrote: a pipeline with a secondary loads two."""
    listed = (run.summary or {}).get("environments") if isinstance(run.summary, dict) else None
    if isinstance(listed, list) and listed:
        return ", ".join(str(env) for env in listed)
    return run.environment or ""


@runs.command()
@click.argument("run_id", default="last")
@format_option
@pass_options
def show(options: Options, run_id: str, fmt: str) -> None:
    """Show one run (an id, a unique prefix of one, or "last") with every step."""
    project = _project(options.project_dir)
    run, events = api.run_events(project, run_id)
    if fmt == "json":
        print_json({**_row(run), "events": [_row(e) for e in events]})
        return
    stdout.print(
        f"[bold]Run {run.run_id}[/]  {run.command}  {run.status}  started {_when(run.started_at)}"
        f"  {_seconds(run.duration_s)}"
    )
    if run.error:
        stdout.print("[red]Error:[/] " + escape(run.error))
    # the environment column appears when the run's steps ran in more than one
    environments = {e.environment for e in events if e.environment}
    with_env = len(environments) > 1
    print_table(
        ["relation", "step", *(["env"] if with_env else []), "status", "rows", "duration", "error"],
        [
            (
                e.relation,
                _step(e),
                *([e.environment or ""] if with_env else []),
                e.status,
                "" if e.rows is None else f"{e.rows:,}",
                _seconds(e.duration_s),
                first_line(e.error),
            )
            for e in events
        ],
    )
    from conveyor.cli.test_cmd import print_failures

    print_failures(
        [(e.relation, e.detail or {}, e.error) for e in events if e.step == "test" and e.status in ("failed", "warned")]
    )


def _step(event: EventRow) -> str:
    """The step as a person reads it: a test event names its test."""
    if event.step == "test" and event.detail and event.detail.get("test"):
        return f"test {event.detail['test']}"
    return event.step


@runs.command()
@click.argument("run_id", default="last")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between polls.")
@format_option
@pass_options
def tail(options: Options, run_id: str, interval: float, fmt: str) -> None:
    """Follow a run (default: the newest) until it ends, printing each step as it changes.

    Exit code 1 when the run did not succeed (failed, cancelled, or abandoned: its process
    died, which is noticed within moments on this host and after its heartbeat expires on
    another).
    """
    project = _project(options.project_dir)
    store = api.open_tracking(project)
    seen: dict[int, str] = {}
    try:
        run = store.get_run(run_id)
        if fmt != "json":
            stdout.print(f"[bold]Following run {run.run_id}[/] ({run.command}, {run.status})")
        while True:
            for event in store.run_events(run.run_id):
                if seen.get(event.id) != event.status:
                    seen[event.id] = event.status
                    _print_event(event, fmt)
            run = store.get_run(run.run_id)
            if run.status != "running":
                break
            time.sleep(interval)
    finally:
        store.close()
    if fmt == "json":  # JSON lines: one object per event, then the run's end
        sys.stdout.write(json.dumps({"run_id": run.run_id, "status": run.status, "error": run.error}) + "\n")
    else:
        stdout.print(f"Run {run.run_id} {run.status} in {_seconds(run.duration_s)}")
    if run.status != "succeeded":
        resumable = run.status in ("failed", "abandoned") and run.command in ("load", "run")
        raise RunFailed(
            f"run {run.run_id} {run.status}" + (f": {run.error}" if run.error else "."),
            hint='"conveyor load --resume" continues it.' if resumable else f'See "conveyor runs show {run.run_id}".',
        )


def _print_event(event: Any, fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(_row(event), default=str) + "\n")
        sys.stdout.flush()
        return
    rows = "" if event.rows is None else f" {event.rows:,} rows"
    error = f": {escape(event.error)}" if event.error else ""
    where = f" ({event.environment})" if event.environment else ""  # a pipeline loads two: say which
    stdout.print(
        f"{_when(event.finished_at or event.started_at)}  {event.status:<9} {event.step} {event.relation}{where}"
        f"{rows}{error}"
    )
