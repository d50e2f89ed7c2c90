"""Whether the process behind a run or a lock is still alive, and heartbeats that tell.

A run or lock records its holder's host and pid. On the same host the process table answers:
the pid is gone, a zombie, or (for runs, which also record the process's start time) reused
by another process. For a holder on another host only its heartbeat tells: it stopped
refreshing a timestamp in the tracking store.

:class:`RunLiveness` (part of the tracking store) heartbeats the runs a process started and
marks runs whose process died ``abandoned``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conveyor.tracking.core import StoreCore
from conveyor.tracking.heartbeat import Heartbeat
from conveyor.tracking.models import RunRow, format_ts, parse_ts, row_from

__all__ = ["Heartbeat", "RunLiveness", "dead_reason", "pid_alive", "process_start"]

log = logging.getLogger("conveyor.tracking")

RUN_TTL_S = 120.0
"""A run on another host whose heartbeat is older than this is abandoned (four missed beats)."""

RUN_LEASE_ENV = "CONVEYOR_RUN_LEASE_S"
"""Overrides :data:`RUN_TTL_S` (seconds); runs then heartbeat four times per lease. For tests."""


def run_lease_s() -> float:
    """How long a run's heartbeat vouches for it: ``CONVEYOR_RUN_LEASE_S``, else :data:`RUN_TTL_S`.

    A run on another host is abandoned only once its heartbeat is older than this. Every
    process that shares a store should see the same value.
    """
    raw = os.environ.get(RUN_LEASE_ENV, "").strip()
    try:
        value = float(raw) if raw else RUN_TTL_S
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %.0f", RUN_LEASE_ENV, raw, RUN_TTL_S)
        return RUN_TTL_S
    return value if value > 0 else RUN_TTL_S


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host is alive (zombies count as dead)."""
    if os.name == "nt":
        # os.kill would terminate the process on windows: rely on heartbeats there
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but belongs to another user
    return not is_zombie(pid)


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        # gone since os.kill, or a system without /proc where we cannot tell
        return Path("/proc/self").exists()
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] in ("Z", "X")


def process_start(pid: int) -> str | None:
    """Which process ``pid`` is: the boot id plus its start time in clock ticks since boot.

    Two processes that share a pid (one after the other, or across a reboot) have different
    values, so a run recorded with this value cannot be mistaken for a later process that got
    its pid. ``None`` where ``/proc`` cannot tell (not Linux, or the process is gone).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    # field 22 of proc(5), starttime; fields[0] is field 3 (the state)
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def dead_reason(
    *,
    host: str,
    pid: int,
    started: str | None,
    heartbeat_at: datetime | None,
    this_host: str,
    now: datetime,
    ttl: timedelta,
) -> str | None:
    """Why the process that ran something is dead, or ``None`` while it may be alive.

    Args:
        host, pid: where it ran.
        started: its :func:`process_start` when it began (``None``: unknown).
        heartbeat_at: its last heartbeat (``None``: an older conveyor that did not beat).
        this_host: the host asking.
        now: the current time.
        ttl: how long a heartbeat stays valid.
    """
    if host == this_host:
        if not pid_alive(pid):
            return f"its process (pid {pid} on {host}) is gone"
        current = process_start(pid) if started else None
        if current is not None and current != started:
            return f"its process (pid {pid} on {host}) is gone; the pid now belongs to another process"
        return None
    if heartbeat_at is not None and now - heartbeat_at > ttl:
        return f"its process (pid {pid} on {host}) stopped heart-beating at {heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"
    return None


_RUN_COLUMNS = ", ".join(field.name for field in fields(RunRow))


class RunLiveness(StoreCore):
    """Mixed into :class:`~conveyor.tracking.store.TrackingStore`: heartbeats of its runs, and
    abandoning the runs whose process died."""

    def beat_run(self, run_id: str) -> bool:
        """Refresh a running run's heartbeat; ``False`` once the run has ended.

        A run that another host marked ``abandoned`` (its heartbeats could not reach the store
        for a while) is alive after all: it is marked ``running`` again.
        """
        stamp = format_ts(datetime.now(UTC))
        with self._session() as db:
            if db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ? AND status = 'running'", (stamp, run_id)):
                return True
            revived = db.execute(
                "UPDATE runs SET heartbeat_at = ?, status = 'running', finished_at = NULL, duration_s = NULL, "
                "error = NULL WHERE run_id = ? AND status = 'abandoned' AND host = ? AND pid = ?",
                (stamp, run_id, self._host, os.getpid()),
            )
        return bool(revived)

    def _stop_beat(self, run_id: str) -> None:
        beat = self._beats.pop(run_id, None)
        if beat is not None:
            beat.stop()

    def abandon_dead_runs(self) -> list[str]:
        """Mark every ``running`` run whose process is dead ``abandoned``; return their ids.

        A run is dead when it ran on this host and its process is gone, a zombie, or its pid
        now belongs to another process; or, on another host, when its heartbeat is older than
        :func:`run_lease_s` (:data:`RUN_TTL_S`). Its running events are abandoned with it. Readers call this, so a
        killed run never stays ``running``.
        """
        now = datetime.now(UTC)
        with self._session() as db:
            rows = [row_from(RunRow, r) for r in db.query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE status = 'running'")]
        dead = []
        for run in rows:
            reason = dead_reason(
                host=run.host, pid=run.pid, started=run.process_start, heartbeat_at=run.heartbeat_at,
                this_host=self._host, now=now, ttl=timedelta(seconds=run_lease_s()),
            )  # fmt: skip
            if reason is not None and self._abandon(run, reason):
                dead.append(run.run_id)
        return dead

    def _abandon(self, run: RunRow, reason: str) -> bool:
        """Mark one dead run, its running events and extracts abandoned, ending them at the last sign of life."""
        error = (
            f"{reason}, and the run never recorded its end (it was killed, e.g. by SIGKILL or the "
            "out-of-memory killer, or its machine stopped)"
        )
        with self._session() as db, db.transaction():
            events = db.query("SELECT id, started_at, finished_at, status FROM events WHERE run_id = ?", (run.run_id,))
            seen = [parse_ts(e["finished_at"] or e["started_at"]) for e in events]
            last = max([run.heartbeat_at or run.started_at, *[t for t in seen if t is not None]])
            changed = db.execute(
                "UPDATE runs SET status = 'abandoned', finished_at = ?, duration_s = ?, error = ? "
                "WHERE run_id = ? AND status = 'running'",
                (format_ts(last), _seconds(run.started_at, last), error, run.run_id),
            )
            for event in events if changed else []:
                if event["status"] == "running":
                    started = parse_ts(event["started_at"]) or last
                    db.execute(
                        "UPDATE events SET status = 'abandoned', finished_at = ?, duration_s = ?, error = ? "
                        "WHERE id = ? AND status = 'running'",
                        (format_ts(last), _seconds(started, last), "the run's process died during this step",
                         event["id"]),
                    )  # fmt: skip
            if changed:
                # its extracts' attempts too; what an attempt committed is in the lake, which
                # the next extract continues from, whatever the store says
                dead = "the run's process died during this extract"
                db.execute(
                    "UPDATE extracts SET status = 'abandoned', finished_at = ?, error = ? "
                    "WHERE run_id = ? AND status = 'running'",
                    (format_ts(last), dead, run.run_id),
                )
                db.execute(
                    "UPDATE extract_state SET status = 'abandoned', finished_at = ?, error = ? "
                    "WHERE last_run_id = ? AND status = 'running'",
                    (format_ts(last), dead, run.run_id),
                )
        return bool(changed)


def _seconds(started: datetime, finished: datetime) -> float:
    return (finished - started).total_seconds()
