"""The lock that makes loads, updates and upgrades of one DuckDB file exclude each other.

A build writes a new file and renames it over the warehouse; an update changes the
published file in place. If an update committed while a build ran, the build's rename
would throw the update away (and an incremental table would never get its rows back, since
the tracking store says they were applied). So both hold an exclusive ``flock`` on
``.<file>.lock`` beside the warehouse: a build for its whole life, an update from before it
opens the file until it has committed. The kernel releases the lock if the holder dies.

The holder writes what it is into the lock file (``load``, run id, pid, host), so whoever
waits can say what it waits for.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from conveyor.errors import WarehouseError

POLL_S = 0.2
"""How often a waiting update tries the lock again."""


def lock_path(target: Path) -> Path:
    """The lock file of a warehouse file."""
    return target.with_name(f".{target.name}.lock")


def holder_text(kind: str, run_id: str) -> str:
    """What a holder writes into the lock file: ``kind run pid host`` (one line)."""
    return f"{kind} {run_id} {os.getpid()} {socket.gethostname()}\n"


def describe_holder(target: Path) -> tuple[str, str]:
    """(kind, details) of whoever holds the lock, as it wrote them; ("load or update", "") if unknown."""
    try:
        fields = lock_path(target).read_text().split()
    except OSError:
        fields = []
    if len(fields) != 4:
        return "load or update", ""
    kind, run_id, pid, host = fields
    return kind, f"run {run_id}, pid {pid} on {host}"


def take(
    target: Path,
    holder: str,
    *,
    timeout_s: float = 0.0,
    waiting: Callable[[str], None] | None = None,
) -> IO[str]:
    """Take the warehouse's lock, waiting at most ``timeout_s`` seconds; returns the held handle.

    ``waiting`` is told once, when the lock is busy, what this waits for.

    Raises:
        WarehouseError: another load, update or upgrade still holds the lock after the wait.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path(target), "a+")  # noqa: SIM115 - held until release; "a+" keeps the holder's text
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            kind, details = describe_holder(target)
            if time.monotonic() >= deadline:
                handle.close()
                raise _busy(target, kind, details, timeout_s) from None
            if waiting is not None and not told:
                waiting(f"waiting for the {kind} of {target.name} to finish" + (f" ({details})" if details else ""))
                told = True
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
    handle.seek(0)
    handle.truncate()
    handle.write(holder)
    handle.flush()
    return handle


def release(handle: IO[str]) -> None:
    """Let the lock go (idempotent)."""
    if not handle.closed:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _busy(target: Path, kind: str, details: str, timeout_s: float) -> WarehouseError:
    who = f" ({details})" if details else ""
    if timeout_s <= 0:
        return WarehouseError(
            f"another {kind} of {target} is running{who}.", hint="Wait for it to finish, then try again."
        )
    return WarehouseError(
        f"the {kind} of {target}{who} was still running after {timeout_s:.0f} s of waiting for it; "
        "nothing was changed.",
        hint="Run the command again when it has finished, or wait longer with --lock-timeout.",
    )
