"""Cancelling a run: Ctrl-C (SIGINT) and SIGTERM stop the server statements in flight.

Closing a socket does not stop a statement: the server runs it to the end, holding its
locks (a staging schema cannot be dropped until then). So every connection that runs
statements for a run is *watched* here while it may be busy, with a way to cancel its
statement on the server: psycopg's ``cancel_safe()``, ADBC's ``adbc_cancel()``, or for
MariaDB/MySQL a ``KILL QUERY`` sent from a side connection.

The command line installs :func:`install_handlers`: the first SIGINT or SIGTERM marks the
run cancelled, cancels every watched statement, and raises :class:`Interrupted` (a
``KeyboardInterrupt``) in the main thread, which unwinds the command: the build's staging
is dropped and the run is recorded ``cancelled``. Worker threads see :func:`requested`
and start nothing new. A second signal only cancels again; a third ends the process at
once.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from conveyor.errors import ConveyorError

log = logging.getLogger("conveyor.cancel")

_requested = threading.Event()
_lock = threading.Lock()
_watched: dict[int, Callable[[], None]] = {}
_ids = itertools.count()
_signals: list[int] = []
_connections: weakref.WeakSet[Any] = weakref.WeakSet()


class Interrupted(KeyboardInterrupt):
    """The main thread's exception after SIGINT or SIGTERM; ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"cancelled by {signal.Signals(signum).name}")


class Cancelled(ConveyorError):
    """Raised by work that notices the run was cancelled (it starts nothing new)."""

    code = "cancelled"


def requested() -> bool:
    """Whether the run was cancelled."""
    return _requested.is_set()


def check() -> None:
    """Raise :class:`Cancelled` if the run was cancelled."""
    if _requested.is_set():
        raise Cancelled("the run was cancelled.")


@contextmanager
def watching(cancel: Callable[[], None]) -> Iterator[None]:
    """Register ``cancel`` (stops the caller's statement on the server) while the block runs.

    A block entered after the run was cancelled raises :class:`Cancelled` at once.
    """
    key = next(_ids)
    with _lock:
        _watched[key] = cancel
    try:
        check()
        yield
    finally:
        with _lock:
            _watched.pop(key, None)


def watch_connection(con: Any) -> Any:
    """Watch a psycopg connection for its whole life: a statement it runs when the run is cancelled is cancelled."""
    with _lock:
        _connections.add(con)
    return con


def _psycopg_cancel(con: Any) -> Callable[[], None]:
    def cancel() -> None:
        from psycopg.pq import TransactionStatus

        # an idle session has nothing to cancel (and a late cancel could hit its next statement)
        if not con.closed and con.info.transaction_status == TransactionStatus.ACTIVE:
            con.cancel_safe(timeout=3.0)

    return cancel


def cancel_all() -> int:
    """Mark the run cancelled and cancel every watched statement; returns how many were asked."""
    _requested.set()
    with _lock:
        cancels = list(_watched.values()) + [_psycopg_cancel(con) for con in list(_connections)]
    for cancel in cancels:
        try:
            cancel()
        except Exception as exc:  # a connection that is gone has nothing left to cancel
            log.debug("cancelling a statement failed: %s", exc)
    return len(cancels)


def reset() -> None:
    """Forget a cancellation (a process that runs again, e.g. a test)."""
    _requested.clear()
    _signals.clear()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _signals.append(signum)
    first = len(_signals) == 1
    cancel_all()
    if first:
        raise Interrupted(signum)
    if len(_signals) >= 3:
        os._exit(128 + signum)


def install_handlers() -> Callable[[], None]:
    """Turn SIGINT and SIGTERM into an orderly cancellation; returns a function restoring the old handlers.

    Only from the main thread (a no-op elsewhere).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
