"""The scheduler: runs installed pipelines at their times, never twice, never two at once.

- One scheduler leads per tracking store: it holds the store lock ``scheduler``, a lease it
  renews every poll and that expires ``lease_s`` (``scheduler.lease_s``, 30 s) after the last
  renewal. On a SQLite store (one host) a second scheduler is refused and the lock is taken
  over when its holder died. On a PostgreSQL store shared by several hosts a second
  scheduler is a standby: it waits, and takes the lease over once the leader stops renewing
  it (its host died), so within ``lease_s`` of the leader's last renewal. A leader that finds
  its lease taken (it stalled longer than the lease) starts nothing more, sees its runs
  through and becomes a standby.
- Every scheduled instant (a *slot*) is claimed in the store before its run starts, so a
  restart neither loses nor doubles a run. At start, for each pipeline, the newest slot that
  was missed while the scheduler was down runs once if it is within the pipeline's ``grace``;
  older missed slots are recorded as missed (each slot row says ``missed``) and alerted once
  per pipeline, with their count and the first and last missed time.
- Each run is a child process (``python -m conveyor.pipeline.worker``), which holds the
  pipeline's and its environments' locks, so a scheduled and a manual run never overlap. A
  slot whose locks are busy waits. A run that outlives its ``timeout`` gets SIGTERM, then
  SIGKILL.
- SIGTERM (or Ctrl-C) stops the scheduler taking new runs, also while it catches up missed
  slots; running children get SIGTERM, which makes them finish or cleanly fail their current
  step, and the scheduler waits for them.
- Runs whose process died without recording their end (SIGKILL, out of memory) are marked
  ``abandoned``, every ``SWEEP_S`` seconds and whenever the scheduler reads a run. A run that
  another scheduler started (one that died, maybe with its host) is watched until it ends:
  its slot takes the run's status, and when the run was abandoned, the pipeline's failure
  notifications and dead-man ``/fail`` URL are told. It is never started again.

Test hook: ``CONVEYOR_CLOCK=<ISO-8601 time>`` makes the scheduler's clock start at that
instant and advance in real time, so a test can stand just before 02:30 on any date.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from conveyor.config.pipelines import PipelineConfig
from conveyor.config.schedule import parse_schedule
from conveyor.errors import ConveyorError, UserError
from conveyor.pipeline import worker
from conveyor.pipeline.catchup import LOCK, CatchUp, Missed, run_row
from conveyor.pipeline.locks import lock_names
from conveyor.tracking.heartbeat import Heartbeat
from conveyor.tracking.host import host_id
from conveyor.tracking.liveness import pid_alive
from conveyor.tracking.pipelines import PipelineRow
from conveyor.tracking.store import TrackingStore, new_run_id

log = logging.getLogger("conveyor.scheduler")
LOCK_TTL_S = 30.0
KILL_AFTER_S = 30.0
SWEEP_S = 10.0
"""How often the scheduler marks dead runs abandoned (readers also do, as they read)."""


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
    config: PipelineConfig | None = None
    locks: list[str] = field(default_factory=list)
    once: bool = False
    project: str = ""
    reason: str | None = None  # why it got SIGTERM: "timeout" or "shutdown"
    started: float = field(default_factory=time.monotonic)


class Scheduler(CatchUp):
    """Runs the pipelines installed in one tracking store."""

    def __init__(
        self, store: TrackingStore, *, poll_s: float = 1.0, clock: Clock | None = None, lease_s: float = LOCK_TTL_S
    ):
        self.store = store
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.clock = clock or Clock()
        self.holder = f"scheduler@{host_id()}:{os.getpid()}"
        self.stopping = threading.Event()
        self.children: dict[str, Child] = {}
        # slots an earlier scheduler claimed whose run still goes on: settled when it ends
        self.orphans: set[tuple[str, datetime]] = set()
        self._swept = 0.0

    def run(self) -> None:
        """Schedule until SIGTERM or SIGINT.

        Beside another scheduler it is refused on a SQLite store, and waits as a standby on a
        shared (PostgreSQL) one until the leader's lease expires.
        """
        self._lock()  # refused, or the lease, or standby on a shared store
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while self._lead_when_free():
                lost = self._lead()
                log.info("stopping: no new runs; waiting for %d running", len(self.children))
                self._drain()
                if not lost:
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.store.release_lock(LOCK, self.holder)

    def _lead(self) -> bool:
        """Lead until stopped (``False``) or until the lease is lost to another scheduler (``True``).

        Every tick renews the lease first. A thread renews it too when no tick has for a third
        of the lease period, so a slow tick (an alert to an unreachable URL, a long catch-up)
        does not lose it; otherwise only ticks renew it, and a renewal says a tick ran.
        """
        lost = threading.Event()
        renewed = [time.monotonic()]

        def beat() -> bool:
            renewed[0] = time.monotonic()
            if self._renew():
                return True
            lost.set()
            return False

        def slow_tick() -> bool:
            return time.monotonic() - renewed[0] < self.lease_s / 3 or beat()

        with Heartbeat(slow_tick, self.lease_s / 3, name="scheduler-lease"):
            log.info("scheduler %s started, leading (lease %.0f s)", self.holder, self.lease_s)
            self._catch_up()
            log.info("stopped catching up with missed runs" if self.stopping.is_set() else "caught up with missed runs")
            self._announce()
            while not self.stopping.is_set():
                if lost.is_set() or not beat():
                    return True
                self._tick()
                self.stopping.wait(self.poll_s)
        return False

    def _renew(self) -> bool:
        """Renew the lease; ``False`` when another scheduler has taken it (this one stalled past it)."""
        if self.store.refresh_lock(LOCK, self.holder, ttl_s=self.lease_s):
            return True
        if self.store.acquire_lock(LOCK, self.holder, ttl_s=self.lease_s):
            return True  # it had expired and nobody took it
        log.error(
            "this scheduler lost its lease to %s (it did not renew it for %.0f s): it starts nothing more, "
            "sees its running runs through and waits as a standby",
            self._leader(),
            self.lease_s,
        )
        return False

    def _leader(self) -> str:
        holder = self.store.lock_holder(LOCK)
        if holder is None:
            return "another process"
        return (
            f"{holder.holder} on host {holder.host} (pid {holder.pid}) since {holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC"
        )

    def _lead_when_free(self) -> bool:
        """Hold the lease: at once when held already, else as a standby until it expires; ``False`` when stopped."""
        if self.store.acquire_lock(LOCK, self.holder, ttl_s=self.lease_s):
            return not self.stopping.is_set()
        self._lock()  # one host's store: refused
        leader = self._leader()
        log.info(
            "standby: the scheduler %s leads this tracking store; this one takes over when its lease of the store "
            "expires (it renews it while alive)",
            leader,
        )
        while not self.stopping.wait(min(self.poll_s, self.lease_s / 4)):
            try:
                if self.store.acquire_lock(LOCK, self.holder, ttl_s=self.lease_s):
                    log.warning("the leading scheduler %s stopped renewing its lease: this one takes over", leader)
                    return True
                leader = self._leader()
            except ConveyorError as exc:  # the store briefly unreachable: keep waiting
                log.warning("standby: %s", exc.render())
        return False

    def _announce(self) -> None:
        """Say what will run when, or that nothing is installed (a silent scheduler looks stuck)."""
        active = [row for row in self.store.list_pipelines() if row.status == "active"]
        if not active:
            log.warning(
                "no pipeline is installed in this tracking store, so nothing will run; "
                "`conveyor pipeline install NAME` schedules one (`conveyor pipeline list` shows them)"
            )
        for row in active:
            slot = parse_schedule(row.schedule).next_after(row.last_slot or row.installed_at)
            when = f"next run {slot:%Y-%m-%d %H:%M:%S} UTC" if slot is not None else "no run left to schedule"
            log.info("pipeline %s (%s): %s", row.name, row.schedule, when)

    def _lock(self) -> None:
        """Take the lease at once; on a store of one host (SQLite), refuse to run beside another scheduler."""
        if self.store.acquire_lock(LOCK, self.holder, ttl_s=self.lease_s) or self.store.shared:
            return  # the lease, or a standby that waits for it
        holder = self.store.lock_holder(LOCK)
        who = f"{holder.holder} since {holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if holder else "another process"
        raise UserError(
            f"another scheduler is already running on this tracking store ({who}).",
            hint="Stop it first; only one scheduler may run per store. A tracking store on PostgreSQL "
            "(tracking.dsn) lets a second scheduler on another host wait as a standby.",
        )

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping.set()
        for child in self.children.values():
            if child.process.poll() is None and child.terminated_at is None:
                child.process.send_signal(signal.SIGTERM)
                child.terminated_at = time.monotonic()
                child.reason = "shutdown"

    def _tick(self) -> None:
        self._reap()
        self._sweep()
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
        if slot > now:
            return
        if self.store.get_slot(row.name, slot) is not None:
            # claimed by an earlier scheduler, maybe on a host that died: its run's locks
            # may stay held until they expire, but whether the run is over is the run's to say
            self._adopt(row, slot, now)
            return
        if self._busy(row):
            return
        run_id = new_run_id()
        if not self.store.claim_slot(row.name, slot, run_id):
            self._adopt(row, slot, now)  # claimed before a restart
            return
        self._spawn(row, slot, run_id)

    def _adopt(self, row: PipelineRow, slot: datetime, now: datetime) -> None:
        """A slot claimed by an earlier scheduler (which died): see it through, never run it twice.

        Its run may still be going (the child outlives a killed scheduler): wait for it. If
        the run ended (or died: it is then abandoned), the slot takes its status. If the run
        never started, it starts now, under the claimed run id, or is missed when it is older
        than ``grace``.
        """
        claimed = self.store.get_slot(row.name, slot)
        if claimed is not None and claimed.status == "running":
            state = self._settle(row.name, claimed)
            if state == "alive":
                return
            if state == "never_started":
                config = PipelineConfig.model_validate(row.definition)
                if now - slot <= timedelta(seconds=config.grace_s):
                    if self._busy(row):
                        return  # tried again at the next tick
                    assert claimed.run_id is not None
                    self._spawn(row, slot, claimed.run_id)
                    return
                self._never_started(claimed)
                self._alert_missed(row, config, Missed(1, slot, slot))
        self.store.set_last_slot(row.name, slot)  # handled: never again
        if parse_schedule(row.schedule).kind == "once":
            self.store.set_pipeline_status(row.name, "done")

    def _sweep(self) -> None:
        """Mark dead runs abandoned now and then; settle watched orphan slots whose run ended."""
        if time.monotonic() - self._swept < SWEEP_S:
            return
        self._swept = time.monotonic()
        self.store.abandon_dead_runs()
        for name, slot in sorted(self.orphans):
            claimed = self.store.get_slot(name, slot)
            if claimed is None or claimed.status != "running":
                self.orphans.discard((name, slot))
            elif (state := self._settle(name, claimed)) != "alive":
                self.orphans.discard((name, slot))
                if state == "never_started":
                    self._never_started(claimed)

    def _busy(self, row: PipelineRow) -> bool:
        """Another run of this pipeline (or of one of its environments) is running or holds its lock."""
        config = PipelineConfig.model_validate(row.definition)
        names = set(lock_names(row.name, config))
        # a child just started has not taken its locks yet
        if any(names & set(child.locks) for child in self.children.values()):
            return True
        return any(self._held(name) for name in names)

    def _held(self, name: str) -> bool:
        holder = self.store.lock_holder(name)
        if holder is None or holder.expired():
            return False
        return _alive(holder.host, holder.pid)  # a dead holder's lock is taken over

    def _spawn(self, row: PipelineRow, slot: datetime, run_id: str) -> None:
        config = PipelineConfig.model_validate(row.definition)
        command = [sys.executable, *worker.argv(row.project_dir, row.name, run_id, slot)]
        log.info("starting %s for %s as run %s", row.name, slot.isoformat(), run_id)
        # a session of its own: a Ctrl-C in the terminal reaches the scheduler, which passes
        # SIGTERM on, so the run can finish its current step
        process = subprocess.Popen(command, cwd=row.project_dir, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + config.timeout_s
        self.children[row.name] = Child(
            row.name, slot, run_id, process, deadline, config=config, locks=lock_names(row.name, config),
            once=parse_schedule(row.schedule).kind == "once", project=row.project,
        )  # fmt: skip
        # so that a scheduler started after this one dies knows the run is still going
        self.store.note_slot(row.name, slot, {"run_id": run_id, "host": host_id(), "pid": process.pid})

    def _reap(self) -> None:
        for name, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                self._enforce_timeout(child)
                continue
            status = self._close_run(child, code)
            del self.children[name]
            if status is None:
                continue  # another process runs this slot's run; the slot is adopted when it ends
            level = logging.INFO if status == "succeeded" else logging.WARNING
            seconds = time.monotonic() - child.started
            log.log(level, "pipeline %s run %s %s in %.1f s", name, child.run_id, status, seconds)
            if status != "succeeded":
                log.log(level, "`conveyor runs show %s` shows what happened", child.run_id)
            detail = {"run_id": child.run_id, "exit_code": code, **({"stopped": child.reason} if child.reason else {})}
            self.store.finish_slot(name, child.slot, status, detail=detail)
            self.store.set_last_slot(name, child.slot)
            if child.once:
                with contextlib.suppress(UserError):  # removed while it ran
                    self.store.set_pipeline_status(name, "done")

    def _enforce_timeout(self, child: Child) -> None:
        """SIGTERM at the run's timeout, SIGKILL 30 s later (a run stopped at shutdown may finish its step)."""
        now = time.monotonic()
        if child.reason != "timeout" and now > child.deadline:
            log.error("pipeline %s run %s exceeded its timeout; stopping it", child.pipeline, child.run_id)
            if child.terminated_at is None:
                child.process.send_signal(signal.SIGTERM)
            child.terminated_at = now
            child.reason = "timeout"
        elif child.reason == "timeout" and child.terminated_at is not None and now - child.terminated_at > KILL_AFTER_S:
            log.error("pipeline %s run %s did not stop after SIGTERM; killing it", child.pipeline, child.run_id)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)  # with its setup commands

    def _close_run(self, child: Child, code: int) -> str | None:
        """Make sure the run is recorded and closed; return the slot's status (the run's, in the end).

        A child killed before it could record its end leaves its run 'running', and one killed
        while it started up left no run at all. A run stopped for its timeout failed. None:
        the run is another live process's (an earlier scheduler's child that outlived it).
        """
        if child.reason == "timeout":
            timeout = child.config.timeout_s if child.config else 0.0
            error = f"the run exceeded its timeout of {timeout:.0f} s and was stopped (exit code {code})"
        elif child.reason == "shutdown":
            error = f"the scheduler stopped; the run was stopped (exit code {code})"
        else:
            error = f"the run process ended with exit code {code}"
        ended = "cancelled" if child.reason == "shutdown" else "failed"
        run = run_row(self.store, child.run_id)  # a dead run reads as abandoned
        if run is not None and run.status == "running" and run.pid != child.process.pid:
            self.store.note_slot(child.pipeline, child.slot, {"host": run.host, "pid": run.pid})
            return None
        if run is None:
            envs = child.config.environments if child.config else None
            self.store.start_run(
                "pipeline", project=child.project, environment=envs.primary if envs else None,
                pipeline=child.pipeline, run_id=child.run_id,
            )  # fmt: skip
            self.store.finish_run(child.run_id, ended, error=error)
            return ended
        if run.status in ("running", "abandoned"):
            if child.reason is None:  # it died on its own (SIGKILL, out of memory, a crash)
                ended = "abandoned"
                error = f"the run's process ended with {_exit(code)} before it recorded its end"
            self.store.finish_run(child.run_id, ended, error=error, summary=run.summary)
            return ended
        if child.reason == "timeout" and run.status != "failed":
            # stopped between steps, the run calls itself cancelled; a timeout is a failure
            self.store.finish_run(child.run_id, "failed", error=run.error or error, summary=run.summary)
            return "failed"
        return run.status

    def _drain(self) -> None:
        while self.children:
            self.store.refresh_lock(LOCK, self.holder, ttl_s=self.lease_s)
            self._reap()
            time.sleep(0.2)


def _exit(code: int) -> str:
    """An exit code as a person reads it: ``exit code 3`` or ``SIGKILL``."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
    return f"exit code {code}"


def is_running(store: TrackingStore) -> bool:
    """Whether a scheduler holds this store's lock and is alive (installed pipelines run only then)."""
    holder = store.lock_holder(LOCK)
    return holder is not None and not holder.expired() and _alive(holder.host, holder.pid)


def _alive(host: str | None, pid: int | None) -> bool:
    """Whether a process that holds a lock or runs a slot may still be running."""
    if not pid:
        return False
    if host is not None and host != host_id():
        return True  # another machine's: only its lock's expiry tells
    return pid_alive(pid)
