"""Which kept build a resume continues, and what the runs that worked on it finished.

A load that fails or dies keeps its build, named after its run (DuckDB's hidden
``.building`` file, PostgreSQL's ``$staging`` schemas marked with the run id). A
``load --resume`` continues that build under its own run id and records a ``resume`` event
naming the build. So when the resume fails or dies in turn, the next resume finds the same
build, and what each run finished in it: for every relation, the events of the latest run
that worked on it count (a later run that rebuilt a relation replaced it in the build).
"""

from __future__ import annotations

from datetime import UTC, datetime

from conveyor.runctx import RunContext
from conveyor.tracking.models import EventRow, RunRow
from conveyor.tracking.store import TrackingStore

RESUME_STEP = "resume"
"""The step of the event (relation ``*``) a resumed load records, naming the build it continues."""


def record_resume(ctx: RunContext, build_id: str) -> None:
    """Record that this run continues the kept build of run ``build_id``."""
    now = datetime.now(UTC)
    ctx.tracking.record_event(
        ctx.run_id, "*", RESUME_STEP, "succeeded", started_at=now, finished_at=now, detail={"build": build_id}
    )


def build_of(events: list[EventRow]) -> str | None:
    """The build a run's events say it continued, or None (it began its own)."""
    for event in events:
        if event.step == RESUME_STEP and event.relation == "*":
            build = (event.detail or {}).get("build")
            if isinstance(build, str) and build:
                return build
    return None


def build_events(store: TrackingStore, last: RunRow) -> tuple[str, list[EventRow]]:
    """The run whose kept build ``last`` worked on, and what every run that worked on it recorded.

    Per relation, only the events of the latest of those runs that has any for it count.
    """
    events = store.run_events(last.run_id)
    build_id = build_of(events) or last.run_id
    if build_id == last.run_id:
        return build_id, events
    runs = [
        r
        for r in reversed(store.list_runs(limit=500))
        if r.environment == last.environment and r.command in ("load", "run") and r.started_at <= last.started_at
    ]
    origin = next((i for i, r in enumerate(runs) if r.run_id == build_id), None)
    chain: list[list[EventRow]] = []
    for run in runs[origin:] if origin is not None else [last]:
        found = events if run.run_id == last.run_id else store.run_events(run.run_id)
        if run.run_id in (build_id, last.run_id) or build_of(found) == build_id:
            chain.append(found)
    latest: dict[str, list[EventRow]] = {}
    for found in chain:
        for relation in {e.relation for e in found}:
            latest[relation] = [e for e in found if e.relation == relation]
    return build_id, sorted((e for group in latest.values() for e in group), key=lambda e: e.started_at)
