"""load --resume and --continue-from: which kept build they continue, and what is left to build.

:func:`resume_point` finds the last failed or abandoned load of an environment, refuses a
build that a later in-place change made stale, tells a load that published before it died
from one that did not, and works out which relations need no rebuilding.

A load that fails or dies keeps its build, named after its run (DuckDB's hidden
``.building`` file, PostgreSQL's ``$staging`` schemas marked with the run id). A
``load --resume`` continues that build under its own run id and records a ``resume`` event
naming the build. So when the resume fails or dies in turn, the next resume finds the same
build, and what each run finished in it: for every relation, the events of the latest run
that worked on it count (a later run that rebuilt a relation replaced it in the build).
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.errors import UserError, did_you_mean
from conveyor.load.build import RESUME_STEP, BuildOptions, fingerprint, has_checks
from conveyor.project import Project
from conveyor.runctx import open_tracking, whole_schemas
from conveyor.tracking.models import EventRow, RunRow
from conveyor.tracking.store import TrackingStore
from conveyor.warehouse.base import Warehouse


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


def resume_point(
    project: Project, warehouse: Warehouse, selection: Sequence[str], continue_from: str | None, skip_copy: bool
) -> tuple[Sequence[str], BuildOptions | None, str]:
    """The last failed or abandoned load of ``env``, which of its relations need no rebuilding, and a note.

    An abandoned load (its process was killed) is resumed like a failed one: its build was
    kept where it stopped. One that died before its build began (while extracting, say) left
    no build: its selection is loaded afresh. One that died after it published (before it
    was recorded finished, or in the middle of publishing, past the point of no return)
    left nothing to resume: no options, and a note saying so.
    """
    env = warehouse.name
    store = open_tracking(project)
    try:
        ended = store.list_runs(limit=50, statuses=("failed", "abandoned"))  # dead runs read as abandoned
        last = None
        for candidate in (r for r in ended if r.command in ("load", "run") and r.environment == env):
            # a load that failed before its build began (refused beside another load, say) left
            # nothing to resume: the failed load before it may have
            steps = {e.step for e in store.run_events(candidate.run_id)}
            if candidate.status == "abandoned" or steps & {"load", "build", "publish"}:
                last = candidate
                break
        if last is None:
            raise UserError(
                f'there is no failed load of environment "{env}" to resume.', hint="Run conveyor load without --resume."
            )
        _refuse_stale_resume(store, env, last)
        build_id, events = build_events(store, last)
    finally:
        store.close()
    chosen = tuple(selection) or tuple((last.selection or "").split())
    if _published(warehouse, build_id, events):
        return chosen, None, f"run {last.run_id} published its build before it died: nothing is left to resume"
    if last.status == "abandoned" and not any(e.step in ("load", "build") for e in events):
        note = f"run {last.run_id} died before its build began: loaded afresh"
        return chosen, BuildOptions(skip_copy=skip_copy), note
    built, changed = _unchanged(project, last.run_id, _finished(project, events), events)
    relations = [r.name for r in whole_schemas(project, project.select(chosen))]
    if continue_from is not None:
        if continue_from not in relations:
            raise UserError(
                f'--continue-from "{continue_from}" is not part of the failed load {last.run_id}.'
                + did_you_mean(continue_from, relations)
            )
        built &= set(relations[: relations.index(continue_from)])
    options = BuildOptions(skip_copy=skip_copy, resume_from=build_id, done=frozenset(built), changed=tuple(changed))
    begun = f", begun by run {build_id}" if build_id != last.run_id else ""
    return chosen, options, f"resumed the build of run {last.run_id} ({last.status}){begun}"


def _published(warehouse: Warehouse, run_id: str, events: Sequence[EventRow]) -> bool:
    """Whether a dead or failed load's build was published.

    Its publish step says so when it finished. A run killed during that step (the step reads
    ``abandoned``) published if its kept build is gone; a publish that failed discarded its
    build and says so, which is not this case.
    """
    publish = [e.status for e in events if e.step == "publish"]
    if not publish:
        return False
    if publish[-1] in ("running", "abandoned"):
        return warehouse.kept_build(run_id) is False
    return publish[-1] == "succeeded"


def _finished(project: Project, events: Sequence[EventRow]) -> set[str]:
    """Relations a run built and, where they have constraints, checked.

    A run killed between a relation's build and its check left it unchecked: it is rebuilt.
    """
    built = {e.relation for e in events if e.step in ("load", "build") and e.status == "succeeded"}
    checked = {e.relation for e in events if e.step == "check" and e.status == "succeeded"}

    def needs_check(name: str) -> bool:
        relation = project.relations.get(name)
        return relation is not None and relation.kind != "view" and has_checks(relation.design)

    return {name for name in built if name in checked or not needs_check(name)}


def _refuse_stale_resume(store: TrackingStore, env: str, load: RunRow) -> None:
    """A kept build must not be published over an update or upgrade that came after it began.

    Its relations were built from the warehouse and extracts as they were then; publishing
    them would undo the later change (and the tracking store would still say it was applied).
    A run that failed or died counts when it may have changed something (:func:`_changed`).
    """
    later = [
        r
        for r in store.list_runs(limit=200, statuses=("succeeded", "failed", "abandoned"))
        if r.environment == env and r.command in _IN_PLACE and r.started_at > load.started_at
        and _changed(store, r)
    ]  # fmt: skip
    if later:
        raise UserError(
            f'the {later[-1].command} run {later[-1].run_id} changed environment "{env}" after the failed load '
            f"{load.run_id} began, so its kept build is out of date and cannot be resumed.",
            hint="Run conveyor load without --resume or --continue-from.",
        )


_IN_PLACE = ("update", "upgrade", "pipeline")


def _changed(store: TrackingStore, run: RunRow) -> bool:
    """Whether an update, upgrade or pipeline run may have changed the warehouse.

    A succeeded one did. An update that failed or died changed it only if its commit began
    (an update killed after committing reads ``abandoned``). An upgrade commits each
    relation on its own, so any relation it finished changed it.
    """
    if run.status == "succeeded":
        return True
    events = store.run_events(run.run_id)
    if any(e.step == "commit" and e.status != "failed" for e in events):
        return True
    return run.command != "update" and any(e.step == "upgrade" and e.status == "succeeded" for e in events)


def _unchanged(
    project: Project, run_id: str, built: set[str], events: Sequence[EventRow]
) -> tuple[set[str], list[str]]:
    """The built relations still as the project defines them, and those that changed since.

    A relation whose SQL, design or dependencies changed since the failed load is built
    again, and so is everything downstream of it. Without a recorded fingerprint (a load
    recorded by an older Conveyor) there is no telling: the resume is refused.
    """
    recorded = {
        e.relation: (e.detail or {}).get("fingerprint")
        for e in events
        if e.step in ("load", "build") and e.status == "succeeded" and e.relation in built
    }
    unknown = sorted(name for name, value in recorded.items() if not value and name in project.relations)
    if unknown:
        raise UserError(
            f"cannot tell whether {', '.join(unknown[:3])}{' ...' if len(unknown) > 3 else ''} changed since the "
            f"failed load {run_id}: it was recorded without fingerprints of what it built.",
            hint="Run conveyor load without --resume.",
        )
    changed = sorted(
        name
        for name, value in recorded.items()
        if name in project.relations and value != fingerprint(project.relations[name])
    )
    stale = set(changed)
    for name in changed:
        stale |= project.dag.downstream(name)
    return {name for name in built if name in project.relations and name not in stale}, changed
