"""Named locks in the tracking store: held by a process (host and pid), refreshed, taken over when
the holder died or stopped refreshing.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from conveyor.tracking.core import StoreCore
from conveyor.tracking.liveness import pid_alive
from conveyor.tracking.models import (
    LockRow,
    format_ts,
    row_from,
)
from conveyor.tracking.rows import (
    LOCK_COLUMNS,
    now_utc,
)

DEFAULT_LOCK_TTL_S = 60.0


class Locks(StoreCore):
    """Mixed into :class:`~conveyor.tracking.store.TrackingStore`: named locks."""

    # -- locks -----------------------------------------------------------------------------

    def acquire_lock(self, name: str, holder: str, ttl_s: float = DEFAULT_LOCK_TTL_S) -> bool:
        """Try to take lock ``name`` for ``holder`` in this process, without waiting.

        The lock is taken over when its holder stopped heart-beating (``expires_at``
        passed) or when the holder's process, on this host, is dead. Acquiring a lock
        this holder and process already hold refreshes it.

        Args:
            name: The lock, e.g. ``pipeline:nightly``.
            holder: Who takes it (a label such as a run id); the identity is holder, host and pid.
            ttl_s: How long the lock stays valid without :meth:`refresh_lock`.

        Returns:
            Whether this holder now holds the lock.
        """
        for _attempt in range(3):
            taken = self._try_lock(name, holder, ttl_s)
            if taken is not None:
                return taken
        return False  # released and taken again between every insert and select: busy

    def _try_lock(self, name: str, holder: str, ttl_s: float) -> bool | None:
        """One attempt of :meth:`acquire_lock`; None when the lock was released between its insert and select."""
        now = now_utc()
        me = (holder, self._host, os.getpid())
        stamps = (format_ts(now), format_ts(now + timedelta(seconds=ttl_s)))
        with self._session() as db, db.transaction():
            inserted = db.execute(
                "INSERT INTO locks (name, holder, host, pid, acquired_at, heartbeat_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, *me, stamps[0], *stamps),
            )
            if inserted == 1:
                return True
            rows = db.query(f"SELECT {LOCK_COLUMNS} FROM locks WHERE name = ?{db.lock_rows}", (name,))
            if not rows:
                return None  # released between our insert and select: try again
            current = row_from(LockRow, rows[0])
            if not self._can_take(current, me, now):
                return False
            acquired = current.acquired_at if (current.holder, current.host, current.pid) == me else now
            return (
                db.execute(
                    "UPDATE locks SET holder = ?, host = ?, pid = ?, acquired_at = ?, heartbeat_at = ?, "
                    "expires_at = ? WHERE name = ? AND holder = ? AND host = ? AND pid = ?",
                    (*me, format_ts(acquired), *stamps, name, current.holder, current.host, current.pid),
                )
                == 1
            )

    def _can_take(self, current: LockRow, me: tuple[str, str, int], now: datetime) -> bool:
        if (current.holder, current.host, current.pid) == me or current.expired(now):
            return True
        return current.host == self._host and not pid_alive(current.pid)

    def refresh_lock(self, name: str, holder: str, ttl_s: float = DEFAULT_LOCK_TTL_S) -> bool:
        """Extend a held lock by ``ttl_s`` from now; ``False`` when it is no longer ours."""
        now = now_utc()
        with self._session() as db:
            return (
                db.execute(
                    "UPDATE locks SET heartbeat_at = ?, expires_at = ? "
                    "WHERE name = ? AND holder = ? AND host = ? AND pid = ?",
                    (format_ts(now), format_ts(now + timedelta(seconds=ttl_s)), name, holder, self._host, os.getpid()),
                )
                == 1
            )

    def release_lock(self, name: str, holder: str, *, force: bool = False) -> bool:
        """Release a lock this holder holds (any holder's with ``force``); whether one was removed."""
        with self._session() as db:
            if force:
                return db.execute("DELETE FROM locks WHERE name = ?", (name,)) == 1
            return (
                db.execute(
                    "DELETE FROM locks WHERE name = ? AND holder = ? AND host = ? AND pid = ?",
                    (name, holder, self._host, os.getpid()),
                )
                == 1
            )

    def lock_holder(self, name: str) -> LockRow | None:
        """The current row of lock ``name`` (possibly expired: see :meth:`LockRow.expired`), or ``None``."""
        with self._session() as db:
            rows = db.query(f"SELECT {LOCK_COLUMNS} FROM locks WHERE name = ?", (name,))
        return row_from(LockRow, rows[0]) if rows else None
