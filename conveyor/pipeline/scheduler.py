"""The scheduler: runs installed pipelines at their times, never twice, never two at once.

- One scheduler per tracking store: it holds the store lock ``scheduler`` and refreshes it;
  a second one is refused. The lock is taken over when its holder died.
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
  ``abandoned``, every ``SWEEP_S`` seconds and whenever the scheduler reads a run.

Test hook: ``CONVEYOR_CLOCK=<ISO-8601 time>`` makes the scheduler's clock start at that
instant and advance in real time, so a test can stand just before 02:30 on any date.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conveyor.config.pipelines import PipelineConfig
from conveyor.config.schedule import parse_schedule
from conveyor.config.secrets import resolve
from conveyor.errors import ConveyorError, Location, UserError
from conveyor.pipeline import deadman, notify, worker
from conveyor.pipeline.locks import lock_names
from conveyor.tracking.liveness import pid_alive
from conveyor.tracking.models import RunRow
from conveyor.tracking.pipelines import PipelineRow, SlotRow
from conveyor.tracking.store import TrackingStore, new_run_id

log = logging.getLogger("conveyor.scheduler")
LOCK = "scheduler"
LOCK_TTL_S = 30.0
KILL_AFTER_S = 30.0
CATCH_UP_BATCH = 500
"""Missed slots recorded per transaction; a stop request is honoured between batches."""
SWEEP_S = 10.0
"""How often the scheduler marks dead runs abandoned (readers also do, as they read)."""
ORPHAN_GRACE_S = 120.0
"""How long a run claimed by a scheduler on another host may take to record itself."""


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


class Scheduler:
    """Runs the pipelines installed in one tracking store."""

    def __init__(self, store: TrackingStore, *, poll_s: float = 1.0, clock: Clock | None = None):
        self.store = store
        self.poll_s = poll_s
        self.clock = clock or Clock()
        self.holder = f"scheduler@{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self.children: dict[str, Child] = {}
        # slots an earlier scheduler claimed whose run still goes on: settled when it ends
        self.orphans: set[tuple[str, datetime]] = set()
        self._swept = 0.0

    def run(self) -> None:
        """Schedule until SIGTERM or SIGINT; refuses to start beside another scheduler."""
        self._lock()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            log.info("scheduler %s started", self.holder)
            self._catch_up()
            log.info("stopped catching up with missed runs" if self.stopping.is_set() else "caught up with missed runs")
            self._announce()
            while not self.stopping.is_set():
                self._tick()
                self.stopping.wait(self.poll_s)
            log.info("stopping: no new runs; waiting for %d running", len(self.children))
            self._drain()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.store.release_lock(LOCK, self.holder)

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
                child.reason = "shutdown"

    def _catch_up(self) -> None:
        """Slots missed while the scheduler was down: the newest within grace runs, the rest are missed.

        A stop request (SIGTERM, Ctrl-C) is honoured between pipelines and between batches of
        slots, so the scheduler stops within moments however long it was down.
        """
        now = self.clock.now()
        for row in self.store.list_pipelines():
            if self.stopping.is_set():
                return
            self.store.refresh_lock(LOCK, self.holder, ttl_s=LOCK_TTL_S)  # a long catch-up keeps it
            if row.status == "active":
                self._catch_up_pipeline(row, now)

    def _catch_up_pipeline(self, row: PipelineRow, now: datetime) -> None:
        """Record one pipeline's missed slots and alert them once, with their count and span."""
        config = PipelineConfig.model_validate(row.definition)
        missed = _Missed()
        runnable = None
        if row.last_slot is not None:
            runnable = self._record_missed(row, config, now, missed)
        if not self.stopping.is_set():
            self._settle_orphans(row, config, runnable, missed)
        if missed.count:
            self._alert_missed(row, config, missed)

    def _record_missed(
        self, row: PipelineRow, config: PipelineConfig, now: datetime, missed: _Missed
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
                self.store.refresh_lock(LOCK, self.holder, ttl_s=LOCK_TTL_S)  # a long catch-up keeps it
                if self.stopping.is_set():
                    return None
        if newest is not None and now - newest > timedelta(seconds=config.grace_s):
            batch.append(newest)
            newest = None
        missed.add(self.store.record_missed(row.name, batch))
        return newest

    def _settle_orphans(
        self, row: PipelineRow, config: PipelineConfig, runnable: datetime | None, missed: _Missed
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
        here = host is None or host == socket.gethostname()
        if here and ((pid and pid_alive(pid)) or _running_here(claimed.run_id)):
            return "alive"  # the previous scheduler's child is still at it
        run = _run_row(self.store, claimed.run_id)  # a dead run reads as abandoned
        if run is None:
            age = (datetime.now(UTC) - claimed.claimed_at).total_seconds()
            return "alive" if not here and pid and age < ORPHAN_GRACE_S else "never_started"
        if run.status == "running":
            return "alive"
        self.store.finish_slot(name, claimed.scheduled_at, run.status, detail={**detail, "adopted": True})
        return run.status

    def _never_started(self, claimed: SlotRow) -> None:
        detail = {**(claimed.detail or {}), "never_started": True}
        self.store.finish_slot(claimed.pipeline, claimed.scheduled_at, "missed", detail=detail)

    def _alert_missed(self, row: PipelineRow, config: PipelineConfig, missed: _Missed) -> None:
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
        deadman.ping(_resolved(row, config.deadman), "fail", report.body, attempts=attempts)
        notify.send(_resolved(row, [t.url for t in config.notify if "failure" in t.on]), report)

    def _tick(self) -> None:
        self.store.refresh_lock(LOCK, self.holder, ttl_s=LOCK_TTL_S)
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
        if slot > now or self._busy(row):
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
                    assert claimed.run_id is not None
                    self._spawn(row, slot, claimed.run_id)
                    return
                self._never_started(claimed)
                self._alert_missed(row, config, _Missed(1, slot, slot))
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
        self.store.note_slot(row.name, slot, {"run_id": run_id, "host": socket.gethostname(), "pid": process.pid})

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
        run = _run_row(self.store, child.run_id)  # a dead run reads as abandoned
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
            self.store.refresh_lock(LOCK, self.holder, ttl_s=LOCK_TTL_S)
            self._reap()
            time.sleep(0.2)


@dataclass
class _Missed:
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
    if host is not None and host != socket.gethostname():
        return True  # another machine's: only its lock's expiry tells
    return pid_alive(pid)


def _running_here(run_id: str | None) -> bool:
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


def _run_row(store: TrackingStore, run_id: str | None) -> RunRow | None:
    """The run with exactly this id, or None when it was never recorded."""
    if not run_id:
        return None
    try:
        run = store.get_run(run_id)
    except UserError:
        return None
    return run if run.run_id == run_id else None


def _resolved(row: PipelineRow, urls: list[str]) -> list[str]:
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
