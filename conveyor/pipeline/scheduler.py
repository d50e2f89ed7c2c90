"""The scheduler: runs installed pipelines at their times, never twice, never two at once.

- One scheduler per tracking store: it holds the store lock ``scheduler`` and refreshes it;
  a second one is refused. The lock is taken over when its holder died.
- Every scheduled instant (a *slot*) is claimed in the store before its run starts, so a
  restart neither loses nor doubles a run. At start, for each pipeline, the newest slot that
  was missed while the scheduler was down runs once if it is within the pipeline's ``grace``;
  older missed slots are recorded as missed and alerted.
- Each run is a child process (``conveyor pipeline run NAME --slot ...``), which holds the
  pipeline's and its environments' locks, so a scheduled and a manual run never overlap. A
  slot whose locks are busy waits. A run that outlives its ``timeout`` gets SIGTERM, then
  SIGKILL.
- SIGTERM (or Ctrl-C) stops the scheduler taking new runs; running children get SIGTERM, which
  makes them finish or cleanly fail their current step, and the scheduler waits for them.

Test hook: ``CONVEYOR_CLOCK=<ISO-8601 time>`` makes the scheduler's clock start at that
instant and advance in real time, so a test can stand just before 02:30 on any date.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from conveyor.config.pipelines import PipelineConfig
from conveyor.config.schedule import parse_schedule
from conveyor.errors import UserError
from conveyor.pipeline import deadman, notify
from conveyor.pipeline.locks import lock_names
from conveyor.tracking.pipelines import PipelineRow
from conveyor.tracking.store import TrackingStore, new_run_id

log = logging.getLogger("conveyor.scheduler")
LOCK = "scheduler"
LOCK_TTL_S = 30.0
KILL_AFTER_S = 30.0


class Clock:
    """Wall-clock time, shifted by ``CONVEYOR_CLOCK`` (the documented test hook)."""

    def __init__(self, start: str | None = None):
        start = start if start is not None else os.environ.get("CONVEYOR_CLOCK")
        self.offset = timedelta(0)
        if start:
            self.offset = datetime.fromisoformat(start).astimezone(UTC) - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Child:
    """A running pipeline run."""

    pipeline: str
    slot: datetime
    run_id: str
    process: subprocess.Popen[bytes]
    deadline: float
    terminated_at: float | None = None


class Scheduler:
    """Runs the pipelines installed in one tracking store."""

    def __init__(self, store: TrackingStore, *, poll_s: float = 1.0, clock: Clock | None = None):
        self.store = store
        self.poll_s = poll_s
        self.clock = clock or Clock()
        self.holder = f"scheduler@{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self.children: dict[str, Child] = {}

    def run(self) -> None:
        """Schedule until SIGTERM or SIGINT; refuses to start beside another scheduler."""
        self._lock()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            log.info("scheduler %s started", self.holder)
            self._catch_up()
            while not self.stopping.is_set():
                self._tick()
                self.stopping.wait(self.poll_s)
            log.info("stopping: no new runs; waiting for %d running", len(self.children))
            self._drain()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.store.release_lock(LOCK, self.holder)

    def _lock(self) -> None:
        if not self.store.acquire_lock(LOCK, self.holder, ttl_s=LOCK_TTL_S):
            holder = self.store.lock_holder(LOCK)
            who = f"{holder.holder} since {holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if holder else "another process"
            raise UserError(
                f"another scheduler is already running on this tracking store ({who}).",
                hint="Stop it first; only one scheduler may run per store.",
            )

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping.set()
        for child in self.children.values():
            if child.process.poll() is None and child.terminated_at is None:
                child.process.send_signal(signal.SIGTERM)
                child.terminated_at = time.monotonic()

    def _catch_up(self) -> None:
        """Slots missed while the scheduler was down: the newest within grace runs, the rest are missed."""
        now = self.clock.now()
        for row in self.store.list_pipelines():
            if row.status != "active" or row.last_slot is None:
                continue
            config = PipelineConfig.model_validate(row.definition)
            missed = parse_schedule(row.schedule).slots_between(row.last_slot, now)
            late = [s for s in missed if now - s <= timedelta(seconds=config.grace_s)]
            runnable = late[-1:] if late else []
            for slot in missed:
                if slot not in runnable:
                    self._record_missed(row, config, slot)

    def _record_missed(self, row: PipelineRow, config: PipelineConfig, slot: datetime) -> None:
        run_id = new_run_id()
        if not self.store.claim_slot(row.name, slot, run_id, status="missed"):
            return
        self.store.set_last_slot(row.name, slot)
        log.warning("pipeline %s missed its run at %s", row.name, slot.isoformat())
        report = notify.RunReport(
            row.name,
            "-",
            [config.environments.primary],
            "missed",
            0.0,
            error=f"the run scheduled for {slot.isoformat()} was missed (scheduler down)",
        )
        deadman.ping(config.deadman, "fail", report.body)
        notify.send([t.url for t in config.notify if "failure" in t.on], report)

    def _tick(self) -> None:
        self.store.refresh_lock(LOCK, self.holder, ttl_s=LOCK_TTL_S)
        self._reap()
        now = self.clock.now()
        for row in self.store.list_pipelines():
            if row.status == "active" and row.name not in self.children:
                self._maybe_start(row, now)

    def _maybe_start(self, row: PipelineRow, now: datetime) -> None:
        schedule = parse_schedule(row.schedule)
        slot = schedule.next_after(row.last_slot or row.installed_at)
        if slot is None:
            if schedule.kind == "once":
                self.store.set_pipeline_status(row.name, "done")
            return
        if slot > now or self._busy(row):
            return
        run_id = new_run_id()
        if not self.store.claim_slot(row.name, slot, run_id):
            self.store.set_last_slot(row.name, slot)  # handled before (a restart): never again
            return
        self._spawn(row, slot, run_id)

    def _busy(self, row: PipelineRow) -> bool:
        """Another run of this pipeline (or of one of its environments) holds its lock."""
        config = PipelineConfig.model_validate(row.definition)
        return any(self._held(name) for name in lock_names(row.name, config))

    def _held(self, name: str) -> bool:
        holder = self.store.lock_holder(name)
        return holder is not None and not holder.expired()

    def _spawn(self, row: PipelineRow, slot: datetime, run_id: str) -> None:
        config = PipelineConfig.model_validate(row.definition)
        argv = [
            sys.executable,
            "-m",
            "conveyor",
            "-q",
            "-p",
            row.project_dir,
            "pipeline",
            "run",
            row.name,
            "--run-id",
            run_id,
            "--slot",
            slot.isoformat(),
        ]
        log.info("starting %s for %s as run %s", row.name, slot.isoformat(), run_id)
        process = subprocess.Popen(argv, cwd=row.project_dir, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + config.timeout_s
        self.children[row.name] = Child(row.name, slot, run_id, process, deadline)

    def _reap(self) -> None:
        for name, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                self._enforce_timeout(child)
                continue
            status = {0: "succeeded"}.get(code, "cancelled" if child.terminated_at else "failed")
            self.store.finish_slot(name, child.slot, status, detail={"run_id": child.run_id, "exit_code": code})
            self.store.set_last_slot(name, child.slot)
            self._close_run(child, code)
            del self.children[name]
            row = self.store.get_pipeline(name)
            if parse_schedule(row.schedule).kind == "once":
                self.store.set_pipeline_status(name, "done")

    def _enforce_timeout(self, child: Child) -> None:
        now = time.monotonic()
        if child.terminated_at is None and now > child.deadline:
            log.error("pipeline %s run %s exceeded its timeout; stopping it", child.pipeline, child.run_id)
            child.process.send_signal(signal.SIGTERM)
            child.terminated_at = now
        elif child.terminated_at is not None and now - child.terminated_at > KILL_AFTER_S:
            child.process.kill()

    def _close_run(self, child: Child, code: int) -> None:
        """A child killed before it could record its end leaves its run 'running': close it."""
        try:
            run = self.store.get_run(child.run_id)
        except UserError:
            return
        if run.status == "running":
            self.store.finish_run(child.run_id, "failed", error=f"the run process ended with exit code {code}")

    def _drain(self) -> None:
        while self.children:
            self._reap()
            time.sleep(0.2)
