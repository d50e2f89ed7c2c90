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
from conveyor.pipeline import deadman, notify
from conveyor.pipeline.locks import lock_names
from conveyor.tracking.models import RunRow
from conveyor.tracking.pipelines import PipelineRow
from conveyor.tracking.store import TrackingStore, _pid_alive, new_run_id

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
    config: PipelineConfig | None = None
    locks: list[str] = field(default_factory=list)
    once: bool = False
    project: str = ""
    reason: str | None = None  # why it got SIGTERM: "timeout" or "shutdown"


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
                child.reason = "shutdown"

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
        self._alert_missed(row, config, slot)

    def _alert_missed(self, row: PipelineRow, config: PipelineConfig, slot: datetime) -> None:
        log.warning("pipeline %s missed its run at %s", row.name, slot.isoformat())
        envs = config.environments
        report = notify.RunReport(
            row.name,
            "-",
            [envs.primary] + ([envs.secondary] if envs.secondary else []),
            "missed",
            0.0,
            error=f"the run scheduled for {slot.isoformat()} was missed (scheduler down)",
        )
        deadman.ping(_resolved(row, config.deadman), "fail", report.body)
        notify.send(_resolved(row, [t.url for t in config.notify if "failure" in t.on]), report)

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
            self._adopt(row, slot, now)  # claimed before a restart
            return
        self._spawn(row, slot, run_id)

    def _adopt(self, row: PipelineRow, slot: datetime, now: datetime) -> None:
        """A slot claimed by an earlier scheduler (which died): see it through, never run it twice.

        Its run may still be going (the child outlives a killed scheduler): wait for it. If
        the run ended, the slot takes its status. If the run never started, it starts now,
        under the claimed run id, or is missed when it is older than ``grace``.
        """
        claimed = self.store.get_slot(row.name, slot)
        if claimed is not None and claimed.status == "running":
            detail = claimed.detail or {}
            if _alive(detail.get("host"), detail.get("pid")) or _running_here(claimed.run_id):
                return  # the previous scheduler's child is still at it
            config = PipelineConfig.model_validate(row.definition)
            run = _run_row(self.store, claimed.run_id)
            if run is None:
                if now - slot <= timedelta(seconds=config.grace_s):
                    assert claimed.run_id is not None
                    self._spawn(row, slot, claimed.run_id)
                    return
                self.store.finish_slot(row.name, slot, "missed", detail={**detail, "never_started": True})
                self._alert_missed(row, config, slot)
            else:
                if run.status == "running":
                    if _alive(run.host, run.pid):
                        return
                    self.store.finish_run(run.run_id, "failed", error="the run's process died before it finished")
                status = "failed" if run.status == "running" else run.status
                self.store.finish_slot(row.name, slot, status, detail={**detail, "adopted": True})
        self.store.set_last_slot(row.name, slot)  # handled: never again
        if parse_schedule(row.schedule).kind == "once":
            self.store.set_pipeline_status(row.name, "done")

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
        # a session of its own: a Ctrl-C in the terminal reaches the scheduler, which passes
        # SIGTERM on, so the run can finish its current step
        process = subprocess.Popen(argv, cwd=row.project_dir, stdin=subprocess.DEVNULL, start_new_session=True)
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
        run = _run_row(self.store, child.run_id)
        if run is not None and run.status == "running" and run.pid != child.process.pid and _alive(run.host, run.pid):
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
        if run.status == "running":
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


def _alive(host: str | None, pid: int | None) -> bool:
    """Whether a process that holds a lock or runs a slot may still be running."""
    if not pid:
        return False
    if host is not None and host != socket.gethostname():
        return True  # another machine's: only its lock's expiry tells
    return _pid_alive(pid)


def _running_here(run_id: str | None) -> bool:
    """Whether a process on this host runs ``run_id`` (``pipeline run --run-id``), as far as /proc tells.

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
        if needle in cmdline and _pid_alive(int(entry.name)):
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
