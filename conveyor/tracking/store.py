"""The tracking store: runs, their events, extracts with watermarks, and locks.

Backends:
    * SQLite (default): ``sqlite:///relative/path.db``, ``sqlite:////abs/path.db``, a plain
      file path, or ``sqlite:///:memory:``. The parent directory is created if missing.
    * PostgreSQL: ``postgresql://...`` or ``postgres://...``, so that a team shares one
      store. The tables live in one schema (``conveyor`` unless told otherwise), created
      if missing.

Concurrency:
    A :class:`TrackingStore` holds one connection guarded by a re-entrant lock, so every
    method may be called from any thread; calls through one store are serialized. Several
    stores (one per process, or per thread if serializing hurts) may write at once:
    SQLite runs in WAL mode with a busy timeout and takes the write lock up front
    (``BEGIN IMMEDIATE``) for multi-statement writes, PostgreSQL runs autocommit per
    statement plus short explicit transactions. A store notices when it was inherited
    through ``fork`` and opens its own connection in the child.

Migrations:
    Numbered files ``NNNN_name.sql`` in ``conveyor/tracking/migrations`` (or
    ``NNNN_name.sqlite.sql`` / ``NNNN_name.postgres.sql`` where the backends differ) are
    applied in order, each in its own transaction, and recorded in ``schema_migrations``.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

from conveyor.config.secrets import mask_dsn
from conveyor.tracking.backends import backend_for
from conveyor.tracking.core import TrackingStoreError
from conveyor.tracking.extracts import ExtractHistory
from conveyor.tracking.locks import DEFAULT_LOCK_TTL_S, Locks
from conveyor.tracking.migrations import Migration, applied_versions, load_migrations, migrate
from conveyor.tracking.pipelines import PipelineState
from conveyor.tracking.runs import RUN_HEARTBEAT_S, RunHistory, new_run_id

__all__ = [
    "DEFAULT_LOCK_TTL_S",
    "RUN_HEARTBEAT_S",
    "Migration",
    "TrackingStore",
    "TrackingStoreError",
    "default_dsn",
    "load_migrations",
    "mask_dsn",
    "new_run_id",
]


def default_dsn(project_dir: Path | str) -> str:
    """The default store of a project: ``<project>/.conveyor/tracking.db``."""
    path = Path(project_dir).expanduser().resolve() / ".conveyor" / "tracking.db"
    return f"sqlite:///{path}"


class TrackingStore(RunHistory, ExtractHistory, Locks, PipelineState):
    """Runs, events, extracts, watermarks and locks in SQLite or PostgreSQL.

    Open one with :meth:`open`; all methods are safe to call from several threads.
    """

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(cls, dsn: str, *, schema: str = "conveyor") -> TrackingStore:
        """Open (and create or migrate) the store at ``dsn``.

        Args:
            dsn: ``sqlite:///rel.db``, ``sqlite:////abs.db``, a file path, or a
                ``postgresql://`` / ``postgres://`` URL.
            schema: The PostgreSQL schema that holds the tables; ignored for SQLite.

        Raises:
            UserError: the DSN is not understood, or the store is newer than this code.
            TrackingStoreError: the store cannot be reached or migrated.
        """
        backend = backend_for(dsn, schema)
        store = cls(backend, dsn)
        try:
            with store._session():
                migrate(backend, load_migrations(backend.name), mask_dsn(dsn))
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        for run_id in list(self._beats):
            self._stop_beat(run_id)
        with self._lock:
            self._closed = True
            with suppress(*self._backend.errors):
                self._backend.close()

    def __enter__(self) -> TrackingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TrackingStore({mask_dsn(self._dsn)!r})"

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgres``."""
        return self._backend.name

    def schema_versions(self) -> dict[int, str]:
        """The applied migrations, version to name."""
        with self._session() as db:
            return applied_versions(db)
