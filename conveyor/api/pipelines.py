"""Pipelines: run one now, install, list, pause and resume them, run the scheduler."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError
from conveyor.project import Project
from conveyor.reporting import Reporter

if TYPE_CHECKING:  # the machinery (pyarrow, sqlglot, the drivers) loads when a command needs it
    from conveyor.pipeline.runner import PipelineOutcome
    from conveyor.tracking.pipelines import PipelineRow
from conveyor.api.reading import open_tracking


def open_project_for_run(path: Path | str = ".") -> tuple[Project, list[ConveyorError]]:
    """The project a pipeline runs in, and why it did not load completely (see :func:`run_pipeline`)."""
    from conveyor.pipeline.definitions import open_for_run

    return open_for_run(path)


def run_pipeline(
    project: Project,
    name: str,
    *,
    run_id: str | None = None,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
    problems: Sequence[ConveyorError] = (),
) -> PipelineOutcome:
    """Run pipeline ``name`` once, now, in this process (``conveyor pipeline run``).

    It holds the pipeline's lock and its environments' locks while it runs; a busy lock is a
    ``UserError`` naming the run that holds it. ``stop`` (an event) ends the run after its
    current step; ``problems`` are what :func:`open_project_for_run` found.
    """
    from conveyor.pipeline.definitions import get_pipeline
    from conveyor.pipeline.runner import run_pipeline as run_one

    definition = get_pipeline(project, name)
    return run_one(project, definition, run_id=run_id, reporter=reporter, stop=stop, problems=problems)


def set_pipeline_status(project: Project, name: str, status: str | None) -> None:
    """Pause (``"paused"``), resume (``"active"``) or uninstall (None) an installed pipeline.

    A resumed pipeline does not make up the runs it missed while paused.
    """
    from conveyor.pipeline.scheduler import Clock

    with open_tracking(project) as store:
        if status is None:
            store.remove_pipeline(name)
            return
        if status == "active" and store.get_pipeline(name).status == "paused":
            store.set_last_slot(name, Clock().now())
        store.set_pipeline_status(name, status)


def install_pipeline(project: Project, name: str) -> tuple[PipelineRow, datetime | None]:
    """Activate pipeline ``name`` in the scheduler's store; returns its row and its next run
    (None for a pipeline that runs only by hand). Slots before now never run."""
    from conveyor.config.schedule import parse_schedule
    from conveyor.pipeline.definitions import get_pipeline
    from conveyor.pipeline.scheduler import Clock

    definition = get_pipeline(project, name)
    now = Clock().now()  # the scheduler's clock (CONVEYOR_CLOCK in tests)
    with open_tracking(project) as store:
        row = store.install_pipeline(
            name, project=project.settings.name, project_dir=str(project.root),
            schedule=definition.config.schedule, definition=definition.definition(), now=now,
        )  # fmt: skip
    return row, parse_schedule(row.schedule).next_after(now)


def scheduler_running(project: Project) -> bool:
    """Whether a scheduler runs on the project's tracking store, so that installed pipelines run."""
    from conveyor.pipeline.scheduler import is_running

    with open_tracking(project) as store:
        return is_running(store)


def pipelines(project: Project) -> list[dict[str, object]]:
    """Every pipeline defined or installed: schedule, status, next run, its last run's id, status and
    duration, and ``definition``: whether the scheduler's installed copy equals the file
    ("installed"), differs from it ("changed since install"), or exists on one side only ("not
    installed", "not defined"). ``note`` says what to do about a difference."""
    from conveyor.config.schedule import parse_schedule
    from conveyor.pipeline.definitions import compare_installed, drift_note, load_pipelines

    defined = load_pipelines(project)
    found: list[dict[str, object]] = []
    with open_tracking(project) as store:
        installed = {row.name: row for row in store.list_pipelines()}
        for name in sorted(set(defined) | set(installed)):
            row = installed.get(name)
            state = compare_installed(defined.get(name), row.definition if row else None)
            last = next(iter(store.list_runs(limit=1, pipeline=name)), None)
            nxt = None
            if row is not None and row.status == "active":
                nxt = parse_schedule(row.schedule).next_after(row.last_slot or row.installed_at)
            schedule = row.schedule if row else defined[name].config.schedule
            found.append({
                "name": name, "schedule": schedule, "status": row.status if row else "not installed",
                "definition": state, "note": drift_note(name, state),
                "next_run": nxt.isoformat() if nxt else None,
                "last_run": last.run_id if last else None, "last_status": last.status if last else None,
                "last_duration_s": last.duration_s if last else None,
            })  # fmt: skip
    return found


def run_scheduler(project: Project, *, poll_s: float = 1.0) -> None:
    """Run the installed pipelines at their times until SIGTERM or Ctrl-C (``conveyor scheduler``).

    Only one scheduler runs per tracking store; a second is refused.
    """
    import logging

    from conveyor.pipeline.scheduler import Clock, Scheduler

    # a broken definition is bad input before the scheduler starts; a difference between a
    # file and its installed copy is worth a warning in the scheduler's log
    for row in pipelines(project):
        if row["note"]:
            logging.getLogger("conveyor.scheduler").warning("%s", row["note"])
    with open_tracking(project) as store:
        Scheduler(store, poll_s=poll_s, clock=Clock()).run()
