"""What every part of the tracking store builds on: one connection behind a lock, and errors that name
the store without its password.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from conveyor.config.secrets import mask_dsn, scrub_dsn
from conveyor.errors import ConveyorError
from conveyor.tracking.backends import Backend
from conveyor.tracking.heartbeat import Heartbeat
from conveyor.tracking.host import host_id
from conveyor.tracking.models import (
    parse_ts,
)


class TrackingStoreError(ConveyorError):
    """The tracking store cannot be reached, or refused a statement, or lacks a row."""


# -- dsn helpers ---------------------------------------------------------------------------


class StoreCore:
    """The connection and its lock; the store's parts (runs, extracts, locks, pipelines) are mixins of it."""

    def __init__(self, backend: Backend, dsn: str):
        """Wrap a backend; use :meth:`open` instead, which also migrates."""
        self._backend = backend
        self._dsn = dsn
        self._lock = threading.RLock()
        self._closed = False
        self._host = host_id()  # CONVEYOR_HOST_ID or the host name
        self._beats: dict[str, Heartbeat] = {}  # runs this store started and still heartbeats

    @property
    def shared(self) -> bool:
        """Whether processes on several hosts may share this store (PostgreSQL; a SQLite file is one host's)."""
        return self._backend.SHARED_ACROSS_HOSTS

    @property
    def server_dsn(self) -> str | None:
        """The DSN of a store on a database server (PostgreSQL), for connections of its own; None for SQLite.

        The lake of an object store keeps its locks there as advisory locks
        (:class:`conveyor.lake.locks.PostgresLocks`). The DSN may hold a password: never show it.
        """
        return self._dsn if self.shared else None

    @property
    def location(self) -> str:
        """The DSN with its password masked, for messages."""
        return mask_dsn(self._dsn)

    @contextmanager
    def _session(self) -> Iterator[Backend]:
        """Hold the store lock with a live connection; turn driver errors into ours."""
        with self._lock:
            if self._closed:
                raise TrackingStoreError(f"the tracking store {self.location} is closed.")
            try:
                self._backend.ensure_connected()
            except self._backend.errors as exc:
                # from None: the driver's exception may carry connection details
                raise self._error("cannot connect to", exc) from None
            try:
                yield self._backend
            except self._backend.errors as exc:
                raise self._error("failed on", exc) from exc

    def _error(self, doing: str, exc: Exception) -> TrackingStoreError:
        detail = scrub_dsn(str(exc).strip(), self._dsn) or type(exc).__name__
        hint = None
        if doing.startswith("cannot"):
            hint = "Check the tracking store setting and that the database is reachable."
        elif "locked" in detail:
            hint = "Another process holds a long write transaction on this SQLite file; retry."
        detail = detail if detail.endswith((".", "!", "?")) else detail + "."
        return TrackingStoreError(f"{doing} the tracking store {self.location}: {detail}", hint=hint)

    def _started_at(self, db: Backend, table: str, key: str, value: str) -> datetime | None:
        rows = db.query(f"SELECT started_at FROM {table} WHERE {key} = ?", (value,))
        if not rows:
            raise TrackingStoreError(f'there is no {table[:-1]} "{value}" in the tracking store {self.location}.')
        return parse_ts(rows[0]["started_at"])
