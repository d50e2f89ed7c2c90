"""What every step of a run shares: the project, the tracking store, the run id, progress; and the
one lifecycle of every run (:class:`RunLifecycle`), a command's or a pipeline's.

Library users get a silent :class:`Reporter`; the CLI passes one that draws progress bars.
Every (relation, step) goes through :meth:`RunContext.step`, which records its start,
end, status, rows and error in the tracking store, with secrets scrubbed from errors.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from conveyor import cancel
from conveyor.config.secrets import scrub
from conveyor.errors import ConveyorError
from conveyor.lake.lake import lake_for
from conveyor.lake.readers import ReadLocks
from conveyor.project import Project, Relation
from conveyor.reporting import Reporter
from conveyor.tracking.store import TrackingStore
from conveyor.warehouse import open_warehouse
from conveyor.warehouse.base import Warehouse

log = logging.getLogger(__name__)


@dataclass
class StepOutcome:
    """Filled in by the code inside :meth:`RunContext.step`."""

    rows: int | None = None
    bytes: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunContext:
    """One run of a command: where it records and reports."""

    project: Project
    tracking: TrackingStore
    run_id: str
    reporter: Reporter = field(default_factory=Reporter)
    jobs: int = 4
    _lock: threading.Lock = field(default_factory=threading.Lock)
    reads: ReadLocks = field(default_factory=ReadLocks)
    """Relations whose extracts this run reads: retention leaves them alone until the run ends."""
    environment: str | None = None
    """The environment its steps run in, recorded with each event."""
    label_environment: bool = False
    """Name the environment in progress labels ("build · production"): a run loading two does."""

    def in_environment(self, environment: str | None, *, label: bool = False) -> RunContext:
        """The same run, its steps recorded (and, with ``label``, shown) in ``environment``."""
        return replace(self, environment=environment, label_environment=label and environment is not None)

    def label(self, step: str) -> str:
        """How progress names ``step`` (with the environment when the run loads two)."""
        return f"{step} · {self.environment}" if self.label_environment else step

    def reading(self, relations: Iterable[Relation]) -> None:
        """Keep retention off the extracts of these source relations until the run ends (before listing them)."""
        lake = lake_for(self.project.lake_location, self.tracking)
        for relation in relations:
            if relation.kind == "source" and relation.source is not None:
                self.reads.hold(lake, relation.source, relation.name)

    @contextmanager
    def step(self, relation: str, step: str) -> Iterator[StepOutcome]:
        """Record one (relation, step); an exception marks it failed and propagates."""
        outcome = StepOutcome()
        event = self.tracking.start_event(self.run_id, relation, step, environment=self.environment)
        label = self.label(step)
        self.reporter.started(relation, label)
        began = time.monotonic()
        try:
            yield outcome
        except BaseException as exc:
            error = scrub(exc.render() if isinstance(exc, ConveyorError) else str(exc) or type(exc).__name__)
            # a statement stopped by Ctrl-C or SIGTERM did not fail: the run was cancelled
            status = "cancelled" if cancel.requested() or isinstance(exc, KeyboardInterrupt) else "failed"
            self.tracking.finish_event(event, status, error=error, detail=outcome.detail or None)
            self.reporter.finished(relation, label, status, None, error)
            raise
        outcome.detail.setdefault("seconds", round(time.monotonic() - began, 6))
        self.tracking.finish_event(
            event, "succeeded", rows=outcome.rows, bytes=outcome.bytes, detail=outcome.detail or None
        )
        self.reporter.finished(relation, label, "succeeded", outcome.rows, None)

    def skipped(self, relation: str, step: str, reason: str) -> None:
        """Record a step that did not run because something upstream failed."""
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        self.tracking.record_event(
            self.run_id, relation, step, "skipped", started_at=now, finished_at=now, error=reason,
            environment=self.environment,
        )  # fmt: skip
        self.reporter.finished(relation, self.label(step), "skipped", None, reason)


class RunLifecycle:
    """Opens a run in the tracking store and closes it whatever happens.

    Every run goes through it: the commands of :mod:`conveyor.api` and pipeline runs alike.
    The body calls :meth:`finish` with the run's status when it knows it (it is recorded at
    once); a run left without one, because an exception escaped, is recorded ``failed``, or
    ``cancelled`` after Ctrl-C or SIGTERM, with the error scrubbed of secrets. The lake reads
    the run held (:attr:`RunContext.reads`) are released either way.
    """

    def __init__(
        self,
        project: Project,
        command: str,
        *,
        environment: str | None,
        selection: Sequence[str] = (),
        reporter: Reporter | None = None,
        jobs: int | None = None,
        pipeline: str | None = None,
        run_id: str | None = None,
        tracking: TrackingStore | None = None,
    ):
        self._owns_tracking = tracking is None
        self.tracking = tracking or open_tracking(project)
        run_id = self.tracking.start_run(
            command, project=project.settings.name, environment=environment, pipeline=pipeline,
            selection=" ".join(selection) or None, run_id=run_id,
        )  # fmt: skip
        self.ctx = RunContext(
            project, self.tracking, run_id, reporter or Reporter(), jobs or project.settings.defaults.jobs,
            environment=environment,
        )  # fmt: skip
        self.began = time.monotonic()
        self.finished = False
        self.results: dict[str, Any] | None = None
        """The run's results document (JSON data), once :meth:`finish` wrote it."""
        self.results_path: Path | None = None
        """Where :meth:`finish` wrote it (None if it could not)."""

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.began

    def finish(self, status: str, *, error: str | None = None, summary: dict[str, Any] | None = None) -> None:
        """Record how the run ended (``succeeded``, ``failed`` or ``cancelled``), now, and write
        its results file (:mod:`conveyor.results`)."""
        self.tracking.finish_run(self.ctx.run_id, status, error=error, summary=summary)
        self.finished = True
        self.write_results()

    def write_results(self) -> None:
        """Build the run's results document from the tracking store and write it to the state folder.

        It never fails the run: a document that cannot be built or written is a warning on
        stderr, and :attr:`results` stays None only when it could not be built.
        """
        from conveyor.results import results_of, write_results

        project = self.ctx.project
        try:
            self.results = results_of(self.tracking, self.ctx.run_id, {n: r.kind for n, r in project.relations.items()})
        except Exception as exc:  # a results file is a by-product: the run's outcome is in the store
            log.warning("could not build the results of run %s: %s", self.ctx.run_id, scrub(_message(exc)))
            return
        try:
            self.results_path = write_results(project.root, self.results)
        except OSError as exc:
            log.warning("could not write the results of run %s: %s", self.ctx.run_id, scrub(_message(exc)))

    def __enter__(self) -> RunLifecycle:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        self.ctx.reads.release()  # the run read what it needed from the lake: retention may go on
        try:
            if not self.finished:
                if isinstance(exc, KeyboardInterrupt):
                    self.finish("cancelled", error=scrub(str(exc) or "cancelled by Ctrl-C (SIGINT)"))
                elif exc is not None:
                    text = exc.render() if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"
                    self.finish("failed", error=scrub(text))
                else:
                    self.finish("failed", error="the run ended without recording how")
        finally:
            if self._owns_tracking:
                self.tracking.close()


def _message(exc: BaseException) -> str:
    return exc.render() if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"


def open_tracking(project: Project) -> TrackingStore:
    """Open (and migrate) the project's tracking store."""
    dsn = project.settings.tracking.dsn
    if dsn.startswith("sqlite:///") and not dsn.startswith("sqlite:////"):
        path = project.path(dsn.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        dsn = f"sqlite:///{path}"
    elif "://" in dsn:
        dsn = project.resolve_dsn(dsn, ("tracking", "dsn"))
    return TrackingStore.open(dsn)


def open_environment(project: Project, env: str | None = None) -> Warehouse:
    """The warehouse of an environment, its DSN resolved."""
    name, config = project.environment(env)
    return open_warehouse(config.type, name, project.environment_dsn(name), root=project.root, config=config)


def whole_schemas(project: Project, relations: Sequence[Relation]) -> list[Relation]:
    """A load rebuilds whole schemas: every relation in a schema the selection touches."""
    schemas = {r.schema for r in relations}
    return [project.relations[n] for n in project.dag.order() if project.relations[n].schema in schemas]
