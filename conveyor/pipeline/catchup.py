"""Catching up after the scheduler was down: missed slots, and runs an earlier scheduler left.

At start, for each pipeline, the newest slot missed while no scheduler ran runs once if it is
within the pipeline's ``grace``; older missed slots are recorded as missed and alerted once,
with their count and span. A slot an earlier scheduler claimed is settled: missed when its
run never started, the run's status when it ended (an abandoned run is alerted, never run
again), or watched until it ends. (:class:`~conveyor.pipeline.scheduler.Scheduler` mixes
this in.)
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from conveyor.config.pipelines import PipelineConfig
from conveyor.config.schedule import parse_schedule
from conveyor.config.secrets import resolve
from conveyor.errors import ConveyorError, Location, UserError
from conveyor.pipeline import deadman, notify
from conveyor.tracking.host import host_id
from conveyor.tracking.liveness import pid_alive
from conveyor.tracking.models import RunRow
from conveyor.tracking.pipelines import PipelineRow, SlotRow
from conveyor.tracking.store import TrackingStore

log = logging.getLogger("conveyor.scheduler")

LOCK = "scheduler"
"""The store lock the leading scheduler holds (its lease)."""
CATCH_UP_BATCH = 500
"""Missed slots recorded per transaction; a stop request is honoured between batches."""
ORPHAN_GRACE_S = 120.0
"""How long a run claimed by a scheduler on another host may take to record itself."""


class _Clock(Protocol):
    def now(self) -> datetime: ...


class CatchUp:
    """The scheduler's catch-up: needs its store, clock, lease and stop flag."""

    store: TrackingStore
    clock: _Clock
    holder: str
    lease_s: float
    stopping: threading.Event
    orphans: set[tuple[str, datetime]]

    def _catch_up(self) -> None:
        """Slots missed while the scheduler was down: the newest within grace runs, the rest are missed.

        A stop request (SIGTERM, Ctrl-C) is honoured between pipelines and between batches of
        slots, so the scheduler stops within moments however long it was down.
        """
        now = self.clock.now()
        for row in self.store.list_pipelines():
            if self.stopping.is_set():
                return
            self.store.refresh_lock(LOCK, self.holder, ttl_s=self.lease_s)  # a long catch-up keeps it
            if row.status == "active":
                self._catch_up_pipeline(row, now)

    def _catch_up_pipeline(self, row: PipelineRow, now: datetime) -> None:
        """Record one pipeline's missed slots and alert them once, with their count and span."""
        config = PipelineConfig.model_validate(row.definition)
        missed = Missed()
        runnable = None
        if row.last_slot is not None:
            runnable = self._record_missed(row, config, now, missed)
        if not self.stopping.is_set():
            self._settle_orphans(row, config, runnable, missed)
        if missed.count:
            self._alert_missed(row, config, missed)

    def _record_missed(
        self, row: PipelineRow, config: PipelineConfig, now: datetime, missed: Missed
    ) -> datetime | None:
        """Record the slots in (last_slot, now] as missed, but the newest if it is within grace.

        Returns that newest slot (left for the normal tick to run), or None.
        """
        assert row.last_slot is not None
        batch: list[datetime] = []
        newest = None
        for slot in parse_schedule(row.schedule).iter_between(row.last_slot, now):
            if newest is not None:
                batch.append(newest)
            newest = slot
            if len(batch) >= CATCH_UP_BATCH:
                missed.add(self.store.record_missed(row.name, batch))
                batch = []
                self.store.refresh_lock(LOCK, self.holder, ttl_s=self.lease_s)  # a long catch-up keeps it
                if self.stopping.is_set():
                    return None
        if newest is not None and now - newest > timedelta(seconds=config.grace_s):
            batch.append(newest)
            newest = None
        missed.add(self.store.record_missed(row.name, batch))
        return newest

    def _settle_orphans(
        self, row: PipelineRow, config: PipelineConfig, runnable: datetime | None, missed: Missed
    ) -> None:
        """Slots an earlier scheduler claimed and never saw through.

        One whose run never started is missed (alerted when it is among this catch-up's slots;
        older ones date from before a reinstall or resume and stay quiet); one whose run ended
        takes its status; one whose run goes on is watched until it ends. The slot that may
        still run is left to the tick, which runs it under the claimed run id.
        """
        for claimed in self.store.running_slots(row.name):
            if claimed.scheduled_at == runnable:
                continue
            state = self._settle(row.name, claimed)
            if state == "alive":
                self.orphans.add((row.name, claimed.scheduled_at))
            elif state == "never_started":
                self._never_started(claimed)
                if row.last_slot is not None and claimed.scheduled_at > row.last_slot:
                    missed.add([claimed.scheduled_at])

    def _settle(self, name: str, claimed: SlotRow) -> str:
        """What became of a slot claimed by an earlier scheduler: ``alive`` (its run goes on),
        ``never_started``, or the status of its ended run, which the slot now takes."""
        detail = claimed.detail or {}
        host, pid = detail.get("host"), detail.get("pid")
        here = host is None or host == host_id()
        if here and ((pid and pid_alive(pid)) or running_here(claimed.run_id)):
            return "alive"  # the previous scheduler's child is still at it
        run = run_row(self.store, claimed.run_id)  # a dead run reads as abandoned
        if run is None:
            age = (datetime.now(UTC) - claimed.claimed_at).total_seconds()
            return "alive" if not here and pid and age < ORPHAN_GRACE_S else "never_started"
        if run.status == "running":
            return "alive"
        self.store.finish_slot(name, claimed.scheduled_at, run.status, detail={**detail, "adopted": True})
        if run.status == "abandoned":
            self._alert_abandoned(name, run)
        return run.status

    def _alert_abandoned(self, name: str, run: RunRow) -> None:
        """Tell the pipeline's failure notifications and dead-man that a run another scheduler started died.

        Its process could not say so itself: its host may be gone with it. The run is not
        started again (it may have published part of its work); the next slot runs as usual.
        """
        log.warning(
            "pipeline %s run %s (started on host %s) was abandoned: %s; it is not run again",
            name, run.run_id, run.host, run.error or "its process died",
        )  # fmt: skip
        try:
            row = self.store.get_pipeline(name)
        except UserError:
            return  # removed meanwhile
        config = PipelineConfig.model_validate(row.definition)
        envs = config.environments
        ended = run.finished_at or datetime.now(UTC)
        report = notify.RunReport(
            name,
            run.run_id,
            [envs.primary] + ([envs.secondary] if envs.secondary else []),
            "abandoned",
            (ended - run.started_at).total_seconds(),
            error=f"the run on host {run.host} was abandoned and is not run again: {run.error or 'its process died'}",
        )
        attempts = 1 if self.stopping.is_set() else 3
        deadman.ping(resolved_urls(row, config.deadman), "fail", report.body, attempts=attempts)
        notify.send(resolved_urls(row, [t.url for t in config.notify if "failure" in t.on]), report)

    def _never_started(self, claimed: SlotRow) -> None:
        detail = {**(claimed.detail or {}), "never_started": True}
        self.store.finish_slot(claimed.pipeline, claimed.scheduled_at, "missed", detail=detail)

    def _alert_missed(self, row: PipelineRow, config: PipelineConfig, missed: Missed) -> None:
        assert missed.first is not None and missed.last is not None
        if missed.count == 1:
            what = f"the run scheduled for {missed.first.isoformat()} was missed"
        else:
            span = f"from {missed.first.isoformat()} to {missed.last.isoformat()}"
            what = f"{missed.count} runs scheduled {span} were missed"
        log.warning("pipeline %s: %s", row.name, what)
        envs = config.environments
        report = notify.RunReport(
            row.name,
            "-",
            [envs.primary] + ([envs.secondary] if envs.secondary else []),
            "missed",
            0.0,
            error=f"{what} (scheduler down)",
        )
        # stopping: one attempt, so that an unreachable URL does not hold the stop up
        attempts = 1 if self.stopping.is_set() else 3
        deadman.ping(resolved_urls(row, config.deadman), "fail", report.body, attempts=attempts)
        notify.send(resolved_urls(row, [t.url for t in config.notify if "failure" in t.on]), report)


@dataclass
class Missed:
    """The missed slots of one pipeline in one catch-up: how many, the first and the last."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, slots: list[datetime]) -> None:
        if not slots:
            return
        self.count += len(slots)
        self.first = min(slots[0], self.first or slots[0])
        self.last = max(slots[-1], self.last or slots[-1])


def running_here(run_id: str | None) -> bool:
    """Whether a process on this host runs ``run_id`` (the worker's ``--run-id``), as far as /proc tells.

    This covers a scheduler killed after it started a run but before it noted the child's pid.
    """
    proc = Path("/proc")
    if not run_id or not proc.is_dir():
        return False
    needle = f"--run-id\0{run_id}\0".encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and pid_alive(int(entry.name)):
            return True
    return False


def run_row(store: TrackingStore, run_id: str | None) -> RunRow | None:
    """The run with exactly this id, or None when it was never recorded."""
    if not run_id:
        return None
    try:
        run = store.get_run(run_id)
    except UserError:
        return None
    return run if run.run_id == run_id else None


def resolved_urls(row: PipelineRow, urls: list[str]) -> list[str]:
    """Resolve ${VAR} secrets in alert URLs, as a run does; an unset one is logged and left out."""
    if not any("${" in url for url in urls):
        return urls
    from conveyor.project import Project

    try:
        credentials = Project.load(row.project_dir).credentials
    except ConveyorError:
        credentials = {}
    found = []
    for url in urls:
        try:
            found.append(resolve(url, where=Location(row.project_dir), credentials=credentials))
        except ConveyorError as exc:
            log.warning("cannot alert pipeline %s's URL %s: %s", row.name, url, exc.render())
    return found
