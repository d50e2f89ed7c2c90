"""Where a lake's locks live: ``flock`` files on this machine, or PostgreSQL advisory locks.

Each relation of a lake has two locks (docs/architecture.md, "The object-store lake"):

* the **writer lock**: one extract (or unload) of the relation at a time. While it is held,
  the writer removes extract folders without a manifest: nobody else can be writing them.
* the **readers' lock**: loads reading the relation's extracts hold it shared, from before
  they list a chain until their run ends; retention takes it exclusively without waiting,
  and removes nothing while anyone reads.

:class:`FileLocks` keeps them as ``flock`` files (``.lock`` and ``.readers``): in the
relation's folder of a local lake, in a folder per lake location under the system's temporary
directory for an object-store lake. The kernel drops them when their holder dies, but they
are seen by this machine only.

:class:`PostgresLocks` keeps them as session-level advisory locks in the PostgreSQL tracking
store, which every host running the project shares: ``pg_try_advisory_lock`` for the writer,
``pg_advisory_lock_shared`` for readers and ``pg_try_advisory_lock`` on the readers' key for
retention. Each lock's key is a hash of (lake location, source, relation, which lock). Each
held lock (and each run's set of read locks) has a connection of its own: the server drops the
lock when that connection dies (its process killed, its host gone), as the kernel drops a
``flock``, and locks of one process never satisfy each other as they would on one session.
The writer's connection carries its holder in ``application_name``, so a waiting writer can
name it. :func:`~conveyor.lake.lake.lake_for` chooses: advisory locks for an object-store lake
whose project keeps its tracking store on PostgreSQL, files otherwise.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from conveyor.config.secrets import mask_dsn, scrub_dsn
from conveyor.errors import LakeError

WRITER = ".lock"
READERS = ".readers"
#: how long PostgreSQL's application_name may be (longer ones are cut by the server)
_APPLICATION_NAME_MAX = 63


class Held(Protocol):
    """A lock this process holds until :meth:`release`."""

    def release(self) -> None: ...


class LakeLocks(ABC):
    """The writer and readers' locks of a lake's relations (see the module's docstring)."""

    @abstractmethod
    def try_write(self, source: str, relation: str, holder: str) -> Held | None:
        """The relation's writer lock if it is free now (recording ``holder``), else None."""

    @abstractmethod
    def holder(self, source: str, relation: str) -> str:
        """Who holds the writer lock, as its holder recorded it (``run X, pid N on HOST``), or ""."""

    @abstractmethod
    def describe(self, source: str, relation: str) -> str:
        """Where the writer lock is, for messages (a file, or the tracking store)."""

    @abstractmethod
    def read(self, source: str, relation: str) -> Held | None:
        """Hold the readers' lock shared (waiting only for a retention pass under way); None: nothing to hold."""

    @abstractmethod
    def try_unread(self, source: str, relation: str) -> Held | None:
        """The readers' lock exclusively, if nobody reads the relation now (never waits), else None."""

    def close(self) -> None:  # noqa: B027 - optional: most providers keep nothing between calls
        """Let go of what is kept between calls (nothing held is released)."""

    def holder_text(self, holder: str) -> str:
        """What a writer records about itself: ``run X, pid N on HOST``."""
        return f"{holder + ', ' if holder else ''}pid {os.getpid()} on {self.host()}"

    def host(self) -> str:
        return socket.gethostname()


class _FileHeld:
    def __init__(self, handle: IO[str]):
        self.handle = handle

    def release(self) -> None:
        self.handle.close()  # closing the descriptor drops the flock


class FileLocks(LakeLocks):
    """``flock`` files in a folder per relation (``folder(source, relation)``): one machine's locks."""

    def __init__(self, folder: Callable[[str, str], Path]):
        self.folder = folder

    def _path(self, source: str, relation: str, name: str, *, create: bool) -> Path | None:
        folder = self.folder(source, relation)
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            return None
        return folder / name

    def try_write(self, source: str, relation: str, holder: str) -> Held | None:
        path = self._path(source, relation, WRITER, create=True)
        assert path is not None
        handle = open(path, "a+")  # noqa: SIM115 - "a+": opening must not erase the holder's text; held until release
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        handle.seek(0)
        handle.truncate()
        handle.write(self.holder_text(holder) + "\n")
        handle.flush()
        return _FileHeld(handle)

    def holder(self, source: str, relation: str) -> str:
        path = self._path(source, relation, WRITER, create=False)
        try:
            return " ".join(path.read_text().split()) if path is not None else ""
        except OSError:
            return ""

    def describe(self, source: str, relation: str) -> str:
        return str(self.folder(source, relation) / WRITER)

    def read(self, source: str, relation: str) -> Held | None:
        path = self._path(source, relation, READERS, create=False)
        if path is None:
            return None  # no folder: nothing was ever extracted, so nothing can be pruned
        handle = open(path, "a+")  # noqa: SIM115 - held until release
        fcntl.flock(handle, fcntl.LOCK_SH)  # waits only for a retention pass that is under way
        return _FileHeld(handle)

    def try_unread(self, source: str, relation: str) -> Held | None:
        path = self._path(source, relation, READERS, create=True)
        assert path is not None
        handle = open(path, "a+")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return _FileHeld(handle)


def advisory_key(location: str, source: str, relation: str, which: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of one lock of one relation of one lake."""
    text = "\x00".join(("conveyor.lake", location, source, relation, which))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big", signed=True)


class _Connection:
    """One PostgreSQL session that holds advisory locks; closing it (or its death) releases them."""

    def __init__(self, conn: Any):
        self.conn = conn
        self.mutex = threading.Lock()

    def release(self) -> None:
        with self.mutex:
            if not self.conn.closed:
                self.conn.close()


class _SharedRead:
    """One shared lock on the readers' connection of a :class:`PostgresLocks`."""

    def __init__(self, owner: PostgresLocks, key: int):
        self.owner, self.key = owner, key

    def release(self) -> None:
        self.owner._unread_shared(self.key)


class PostgresLocks(LakeLocks):
    """Session-level advisory locks in the PostgreSQL database of the tracking store (all hosts see them).

    ``dsn`` is the tracking store's (with its password: connections need it; messages show
    it masked). ``location`` is the lake's (``s3://bucket/prefix``), part of every key, so
    lakes sharing a database share no lock.
    """

    def __init__(self, dsn: str, location: str, *, host: str | None = None):
        self.dsn = dsn
        self.location = location
        self._host = host
        self._readers: _Connection | None = None
        self._shared: dict[int, int] = {}
        self._spares: dict[tuple[int, str], _Connection] = {}
        self._mutex = threading.Lock()

    def host(self) -> str:
        if self._host is None:
            from conveyor.tracking.host import host_id

            self._host = host_id()
        return self._host

    def _connect(self, name: str) -> _Connection:
        import psycopg

        try:
            text = name.encode("ascii", "replace")[:_APPLICATION_NAME_MAX].decode("ascii")
            return _Connection(psycopg.connect(self.dsn, autocommit=True, application_name=text, connect_timeout=30))
        except psycopg.Error as exc:
            detail = scrub_dsn(" ".join(str(exc).split()), self.dsn) or type(exc).__name__
            raise LakeError(
                f"cannot take a lock of the lake {self.location} in the tracking store {mask_dsn(self.dsn)}: {detail}",
                hint="The lake's locks live in the PostgreSQL tracking store; check that it is reachable.",
            ) from None

    def _key(self, source: str, relation: str, which: str) -> int:
        return advisory_key(self.location, source, relation, which)

    def try_write(self, source: str, relation: str, holder: str) -> Held | None:
        name = f"conveyor {self.holder_text(holder)}"
        spare = (threading.get_ident(), name)
        with self._mutex:
            held = self._spares.pop(spare, None)
        if held is None or held.conn.closed or held.conn.broken:
            held = self._connect(name)
        if _try_lock(held, self._key(source, relation, WRITER)):
            return held
        with self._mutex:  # a writer polls: its next attempt reuses this session instead of connecting again
            self._spares[spare] = held
        return None

    def close(self) -> None:
        """Close the sessions kept for writers' next attempts (held locks stay held)."""
        with self._mutex:
            spares, self._spares = list(self._spares.values()), {}
        for held in spares:
            held.release()

    def holder(self, source: str, relation: str) -> str:
        key = self._key(source, relation, WRITER)
        held = self._connect("conveyor lock lookup")
        try:
            row = held.conn.execute(
                "SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock' "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1",
                ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
            ).fetchone()
        finally:
            held.release()
        text = str(row[0] or "") if row else ""
        return text.removeprefix("conveyor ").strip()

    def describe(self, source: str, relation: str) -> str:
        return f"an advisory lock in the tracking store {mask_dsn(self.dsn)}"

    def read(self, source: str, relation: str) -> Held | None:
        key = self._key(source, relation, READERS)
        with self._mutex:
            if self._readers is None or self._readers.conn.closed:
                self._readers = self._connect(f"conveyor readers, pid {os.getpid()} on {self.host()}")
            if key not in self._shared:
                # waits only for a retention pass that is under way
                self._readers.conn.execute("SELECT pg_advisory_lock_shared(%s)", (key,))
            self._shared[key] = self._shared.get(key, 0) + 1
        return _SharedRead(self, key)

    def _unread_shared(self, key: int) -> None:
        with self._mutex:
            count = self._shared.get(key, 0) - 1
            if count > 0:
                self._shared[key] = count
                return
            self._shared.pop(key, None)
            readers = self._readers
            if readers is None:
                return
            if not self._shared:
                readers.release()
                self._readers = None
            elif not readers.conn.closed:
                readers.conn.execute("SELECT pg_advisory_unlock_shared(%s)", (key,))

    def try_unread(self, source: str, relation: str) -> Held | None:
        held = self._connect(f"conveyor retention, pid {os.getpid()} on {self.host()}")
        if _try_lock(held, self._key(source, relation, READERS)):
            return held
        held.release()
        return None


def _try_lock(held: _Connection, key: int) -> bool:
    """``pg_try_advisory_lock(key)`` on a held session; on an error the session is released."""
    try:
        row = held.conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    except BaseException:
        held.release()
        raise
    return bool(row and row[0])
