"""``conveyor pipeline ...`` and ``conveyor scheduler``."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from typing import Any

import click
import yaml
from rich.markup import escape

from conveyor import api
from conveyor.cli.app import Options, pass_options
from conveyor.cli.output import RichReporter, configure_logging, first_line, print_json, print_table, stdout
from conveyor.errors import RunFailed
from conveyor.pipeline.definitions import CHANGED, Pipeline, get_pipeline
from conveyor.project import Project

format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)


@click.group()
def pipeline() -> None:
    """Define, install and run scheduled pipelines (see docs/pipelines.md)."""


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if value else ""


@pipeline.command()
@click.argument("name")
@format_option
@pass_options
def install(options: Options, name: str, fmt: str) -> None:
    """Activate pipeline NAME in the scheduler's store (install again after changing it)."""
    project = api.open_project(options.project_dir)
    row, nxt = api.install_pipeline(project, name)
    if fmt == "json":
        print_json({"name": name, "status": row.status, "schedule": row.schedule, "next_run": _iso(nxt)})
        return
    stdout.print(f"Installed pipeline {name}: {row.schedule}; next run {_when(nxt) or 'only when run by hand'}.")
    _no_scheduler_note(project)


#: installing does not run anything by itself; a new user expects it to
NO_SCHEDULER = (
    'No scheduler is running on this tracking store: installed pipelines run only while "conveyor scheduler" '
    "runs (docs/pipelines.md: under systemd or in a container)."
)


def _no_scheduler_note(project: Project) -> None:
    if not api.scheduler_running(project):
        stdout.print(f"[yellow]Note:[/] {escape(NO_SCHEDULER)}", highlight=False)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@pipeline.command(name="list")
@format_option
@pass_options
def list_(options: Options, fmt: str) -> None:
    """Defined and installed pipelines: schedule, status, whether the installed copy matches
    the file, next run, last run's status and duration."""
    project = api.open_project(options.project_dir)
    rows = api.pipelines(project)
    if fmt == "json":
        print_json(rows)
        return
    print_table(
        ["pipeline", "schedule", "status", "definition", "next run", "last status", "duration"],
        [_list_row(r) for r in rows],
    )
    for row in rows:
        if row["note"]:
            stdout.print(escape(str(row["note"])), highlight=False)
    if not rows:
        stdout.print("No pipelines: define one in conveyor.yaml (pipelines:) or pipelines/<name>.yaml.")
    elif any(row["status"] == "active" for row in rows):
        _no_scheduler_note(project)


def _list_row(row: dict[str, Any]) -> tuple[str, ...]:
    nxt = datetime.fromisoformat(row["next_run"]) if row["next_run"] else None
    duration = f"{row['last_duration_s']:.1f} s" if row["last_duration_s"] else ""
    return (
        row["name"],
        row["schedule"],
        row["status"],
        row["definition"],
        _when(nxt),
        row["last_status"] or "",
        duration,
    )


@pipeline.command()
@click.argument("name")
@format_option
@pass_options
def show(options: Options, name: str, fmt: str) -> None:
    """The definition of NAME, its resolved steps, and its recent runs."""
    project = api.open_project(options.project_dir)
    definition = get_pipeline(project, name)
    runs = api.runs(project, limit=10, pipeline=name)
    steps = _resolved_steps(definition)
    if fmt == "json":
        print_json(
            {
                "name": name,
                "definition": definition.definition(),
                "steps": steps,
                "runs": [
                    {
                        "run_id": r.run_id,
                        "status": r.status,
                        "started_at": r.started_at.isoformat(),
                        "duration_s": r.duration_s,
                        "error": r.error,
                    }
                    for r in runs
                ],
            }
        )
        return
    stdout.print(f"[bold]Pipeline {name}[/]  ({definition.location()})")
    stdout.print(escape(yaml.safe_dump(definition.definition(), sort_keys=False, allow_unicode=True)))
    stdout.print("[bold]Steps[/]")
    for index, step in enumerate(steps, 1):
        stdout.print(f"  {index}. {step}")
    if not runs:  # a header over no rows reads like a broken table
        stdout.print(f'[bold]Recent runs[/]: none yet; "conveyor pipeline run {name}" runs it now.')
        return
    print_table(
        ["run", "status", "started", "duration", "error"],
        [
            (
                r.run_id,
                r.status,
                _when(r.started_at),
                f"{r.duration_s:.1f} s" if r.duration_s else "",
                first_line(r.error),
            )
            for r in runs
        ],
        title="Recent runs",
    )


def _resolved_steps(definition: Pipeline) -> list[str]:
    config = definition.config
    envs = config.environments
    lines = [f"setup: {command}" for command in config.setup]
    if config.deadman:
        lines.append("dead-man switch: /start")
    for step in config.step_list:
        if step in ("load", "update"):
            lines.extend(f"{step} into {env}" for env in definition.environments)
        elif step == "load_skip_copy":
            lines.append(f"load --skip-copy into {envs.scratch or envs.primary}")
        else:
            lines.append(step + (f" ({', '.join(config.selection)})" if config.selection else ""))
    if config.deadman:
        lines.append("dead-man switch: success or /fail")
    lines.extend(f"notify {', '.join(t.on)}: {t.url.split('://')[0]}://…" for t in config.notify)
    return lines


def _said(fmt: str, name: str, status: str, text: str) -> None:
    if fmt == "json":
        print_json({"name": name, "status": status})
    else:
        stdout.print(text.format(name=name))


def _set_status(options: Options, name: str, status: str | None) -> None:
    api.set_pipeline_status(api.open_project(options.project_dir), name, status)


@pipeline.command()
@click.argument("name")
@format_option
@pass_options
def pause(options: Options, name: str, fmt: str) -> None:
    """Stop scheduling NAME (a running run finishes)."""
    _set_status(options, name, "paused")
    _said(fmt, name, "paused", "Paused pipeline {name}.")


@pipeline.command()
@click.argument("name")
@format_option
@pass_options
def resume(options: Options, name: str, fmt: str) -> None:
    """Schedule NAME again; runs missed while paused are not made up."""
    _set_status(options, name, "active")
    _said(fmt, name, "active", "Resumed pipeline {name}.")


@pipeline.command()
@click.argument("name")
@format_option
@pass_options
def remove(options: Options, name: str, fmt: str) -> None:
    """Uninstall NAME from the scheduler's store (its run history stays)."""
    _set_status(options, name, None)
    _said(fmt, name, "removed", "Removed pipeline {name}.")


@pipeline.command(name="run")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Show the steps the run would take; change nothing.")
@format_option
@pass_options
def run_(options: Options, name: str, dry_run: bool, fmt: str) -> None:
    """Run pipeline NAME now, in the foreground, once, with progress.

    It runs the definition in the project's files; the scheduler runs the installed copy
    (a note says so when they differ).
    """
    project, problems = api.open_project_for_run(options.project_dir)
    if dry_run:
        steps = _resolved_steps(get_pipeline(project, name))
        if fmt == "json":
            print_json({"name": name, "dry_run": True, "steps": steps})
            return
        stdout.print(f"Pipeline {name} would run:")
        for index, step in enumerate(steps, 1):
            stdout.print(f"  {index}. {escape(step)}")
        stdout.print("Dry run: nothing was changed.")
        return
    note = next((r["note"] for r in api.pipelines(project) if r["name"] == name and r["definition"] == CHANGED), None)
    if note and fmt == "table":
        stdout.print(f"Note: {escape(str(note))} This run uses the file.", highlight=False)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with RichReporter(options.verbosity if fmt == "table" else -1) as reporter:
            outcome = api.run_pipeline(project, name, reporter=reporter, stop=stop, problems=problems)
    finally:
        signal.signal(signal.SIGTERM, previous)
    _report(outcome, fmt)


def _report(outcome: Any, fmt: str) -> None:
    if fmt == "json":
        print_json(
            {
                "run_id": outcome.run_id,
                "pipeline": outcome.pipeline,
                "status": outcome.status,
                "seconds": round(outcome.seconds, 3),
                "steps": [vars(s) for s in outcome.steps],
            }
        )
    else:
        for step in outcome.steps:
            mark = "[green]✓[/]" if step.ok else "[red]✗[/]"
            where = f" {step.environment}" if step.environment else ""
            extra = f": {escape(step.error)}" if step.error else ""
            stdout.print(f"{mark} {step.step}{where}{extra}")
        stdout.print(f"Pipeline {outcome.pipeline} run {outcome.run_id} {outcome.status} in {outcome.seconds:.1f} s")
    if not outcome.ok:
        raise RunFailed(
            f"pipeline run {outcome.run_id} {outcome.status}.", hint=f'See "conveyor runs show {outcome.run_id}".'
        )


@click.command()
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between schedule checks.")
@pass_options
def scheduler(options: Options, poll: float) -> None:
    """Run installed pipelines at their times, until stopped (SIGTERM or Ctrl-C).

    Only one scheduler may run per tracking store. See docs/pipelines.md for running it
    under systemd or in a container.
    """
    configure_logging(
        logging.INFO if options.verbosity >= 0 else logging.WARNING, "%(asctime)s %(levelname)s %(message)s"
    )
    # a broken definition is bad input before the scheduler starts; a broken SQL file is not
    # (the runs fail, recorded and notified, instead of no run at all)
    project, _ = api.open_project_for_run(options.project_dir)
    api.run_scheduler(project, poll_s=poll)
