"""Reading a project and its history: open it, validate it, bootstrap its designs, its runs and
extract state, and the stores and warehouses behind them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.project import Project, Relation
from conveyor.tracking.models import EventRow, ExtractStateRow, RunRow

if TYPE_CHECKING:  # the machinery (pyarrow, sqlglot, the drivers) loads when a command needs it
    from datetime import datetime

    from conveyor.bootstrap import BootstrapReport
    from conveyor.extract.freshness import FreshnessRow
    from conveyor.tracking.store import TrackingStore
    from conveyor.validate.problems import Report
    from conveyor.warehouse.base import QueryResult, Warehouse


def open_project(path: Path | str = ".") -> Project:
    """Load and check a project; raises ``ProjectError`` listing every problem."""
    return Project.load(path)


def validate(
    project: Project | Path | str = ".",
    selection: Sequence[str] = (),
    *,
    sources: bool = True,
    sql: bool = True,
    warehouse: str | None = None,
    cache: bool = True,
    environment: str | None = None,
) -> Report:
    """Check a project before it runs and return every problem (``conveyor validate``).

    ``project`` is a loaded project or its folder (a folder whose project does not load still
    gets a report: its problems are in it). See :func:`conveyor.validate.run.validate` for the
    options.
    """
    from conveyor.validate.run import validate as run_validation

    root = project.root if isinstance(project, Project) else project
    return run_validation(
        root, selection, sources=sources, sql=sql, warehouse=warehouse, cache=cache, environment=environment
    )


def runs(
    project: Project,
    *,
    limit: int = 20,
    status: str | None = None,
    pipeline: str | None = None,
    command: str | None = None,
    environment: str | None = None,
    before: str | None = None,
    started_from: datetime | None = None,
    started_until: datetime | None = None,
) -> list[RunRow]:
    """The most recent runs first, from the project's tracking store (``conveyor runs``);
    ``environment`` keeps the runs that wrote that environment (in any of their steps).

    ``before`` (a run id) lists the runs after it, older ones: the next page. ``started_from``
    (inclusive) and ``started_until`` (exclusive) bound when they started (time-zone aware).
    """
    with open_tracking(project) as store:
        return store.list_runs(
            limit=limit, status=status, pipeline=pipeline, command=command, environment=environment,
            before=before, started_from=started_from, started_until=started_until,
        )  # fmt: skip


def run_events(project: Project, run_id: str) -> tuple[RunRow, list[EventRow]]:
    """One run (a full id or a unique prefix) and its events, in order (``conveyor runs show``)."""
    with open_tracking(project) as store:
        found = store.get_run(run_id)
        return found, store.run_events(found.run_id)


def extract_status(project: Project, source: str | None = None) -> list[ExtractStateRow]:
    """The extract state of every table (or one source's): last extract, rows, watermark."""
    with open_tracking(project) as store:
        return store.extract_state(source)


def freshness(project: Project, selection: Sequence[str] = (), *, now: datetime | None = None) -> list[FreshnessRow]:
    """How old the newest data of each selected source table is (``conveyor freshness``).

    One row per source table of ``selection`` (default: all), in execution order, with its
    status against the design's ``freshness`` thresholds: ok, warn, error, or unknown (never
    extracted). ``now`` (time-zone aware) is the time ages are measured against (default: now).
    See docs/freshness.md.
    """
    from conveyor.extract.freshness import measure

    with open_tracking(project) as store:
        return measure(project, project.select(selection), store, now=now)


def open_tracking(project: Project) -> TrackingStore:
    """The project's tracking store, opened (and migrated); close it when done (it is a context manager)."""
    from conveyor.runctx import open_tracking as open_store

    return open_store(project)


def query(project: Project, sql: str, *, env: str | None = None, limit: int = 100) -> QueryResult:
    """Run one read-only query against an environment's published warehouse (``conveyor query``).

    At most ``limit`` rows come back (``QueryResult.more`` says whether there were more). The
    connection is read-only, so the query cannot change the warehouse.
    """
    return open_environment(project, env).query(sql, limit)


def open_environment(project: Project, env: str | None = None) -> Warehouse:
    """The warehouse of an environment (the default one when ``env`` is None), its DSN resolved."""
    from conveyor.runctx import open_environment as open_warehouse

    return open_warehouse(project, env)


def whole_schemas(project: Project, relations: Sequence[Relation]) -> list[Relation]:
    """What a load of ``relations`` rebuilds: every relation of the schemas they are in, in order."""
    from conveyor.runctx import whole_schemas as schemas_of

    return schemas_of(project, relations)


def with_dependents(project: Project, relations: Sequence[Relation]) -> list[Relation]:
    """What an update of ``relations`` refreshes: them and everything downstream, in order."""
    from conveyor.load.update import with_dependents as downstream

    return downstream(project, relations)


def bootstrap(
    project: Project, selection: Sequence[str] = (), *, update: bool = False, dry_run: bool = False
) -> BootstrapReport:
    """Write table designs for upstream tables (``conveyor bootstrap``); see docs/bootstrap.md."""
    from conveyor.bootstrap import bootstrap as write_designs

    return write_designs(project, selection, update=update, dry_run=dry_run)
