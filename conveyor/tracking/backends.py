"""How the tracking store talks to SQLite or PostgreSQL: connections, parameter style, transactions."""

from __future__ import annotations

import os
import re
import sqlite3
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from conveyor.config.secrets import URL_SCHEME, mask_dsn
from conveyor.errors import UserError

SQLITE_BUSY_TIMEOUT_S = 30.0
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

Params = Sequence[Any]


class Backend:
    """The dialect layer: connection, parameter style, transactions, bootstrap DDL."""

    name = ""
    SHARED_ACROSS_HOSTS = False
    """Whether processes on several machines can use one store (a server database, not a file)."""
    lock_rows = ""
    """What a SELECT ends with to lock the rows it reads until the transaction ends."""
    errors: tuple[type[Exception], ...] = ()

    def ensure_connected(self) -> None:
        """Connect, or reconnect after a lost connection or a fork."""
        raise NotImplementedError

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        raise NotImplementedError

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Run one query; return its rows as column mappings."""
        raise NotImplementedError

    def insert_id(self, sql: str, params: Params) -> int:
        """Run an INSERT into a table with an ``id`` key; return the new id."""
        raise NotImplementedError

    def transaction(self) -> Any:
        """A context manager around one write transaction."""
        raise NotImplementedError

    def bootstrap(self) -> None:
        """Create what must exist before the first migration (inside a transaction)."""
        raise NotImplementedError

    def table_exists(self, table: str) -> bool:
        """Whether ``table`` exists where the store keeps its tables."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection (one inherited through fork is left to its owner)."""
        raise NotImplementedError


_MIGRATIONS_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode, waiting out other processes doing the same.

    Changing the journal mode needs an exclusive lock, and SQLite reports "database is
    locked" at once, without honouring busy_timeout, when several processes open a new
    file together; so retry with a short backoff until the busy timeout has passed.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            transient = "locked" in str(exc) or "busy" in str(exc)
            if not transient or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class SqliteBackend(Backend):
    name = "sqlite"
    lock_rows = ""  # a write transaction already holds the whole database
    errors = (sqlite3.Error,)

    def __init__(self, path: str):
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def ensure_connected(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions, we issue BEGIN IMMEDIATE ourselves
        conn = sqlite3.connect(self.path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        _switch_to_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._conn, self._pid = conn, os.getpid()

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "ensure_connected() first"
        return self._conn

    def execute(self, sql: str, params: Params = ()) -> int:
        return self.conn.execute(sql, tuple(params)).rowcount

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, tuple(params))
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def insert_id(self, sql: str, params: Params) -> int:
        row_id = self.conn.execute(sql, tuple(params)).lastrowid
        assert row_id is not None
        return row_id

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # immediate: take the write lock now, waiting up to the busy timeout, instead of
        # failing with SQLITE_BUSY when a read later upgrades to a write in WAL mode
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def bootstrap(self) -> None:
        self.execute(_MIGRATIONS_TABLE_DDL)

    def table_exists(self, table: str) -> bool:
        rows = self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        return bool(rows)

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None


class PostgresBackend(Backend):
    name = "postgres"
    SHARED_ACROSS_HOSTS = True
    lock_rows = " FOR UPDATE"

    def __init__(self, dsn: str, schema: str):
        import psycopg

        self._psycopg = psycopg
        self.errors = (psycopg.Error,)
        self.dsn = dsn
        self.schema = schema
        self._conn: Any = None
        self._pid = 0

    def ensure_connected(self) -> None:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken and self._pid == os.getpid():
            return
        from psycopg import sql

        conn = self._psycopg.connect(self.dsn, autocommit=True)
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        self._conn, self._pid = conn, os.getpid()

    @staticmethod
    def _sql(text: str) -> str:
        # the store writes sqlite's '?' placeholders; none of its statements has a literal ? or %
        return text.replace("?", "%s")

    def execute(self, sql: str, params: Params = ()) -> int:
        return int(self._conn.execute(self._sql(sql), tuple(params)).rowcount)

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        cursor = self._conn.execute(self._sql(sql), tuple(params))
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def insert_id(self, sql: str, params: Params) -> int:
        row = self._conn.execute(self._sql(sql) + " RETURNING id", tuple(params)).fetchone()
        return int(row[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    def bootstrap(self) -> None:
        from psycopg import sql

        # serialize migrators of this schema; released at commit
        key = zlib.crc32(f"conveyor.tracking:{self.schema}".encode())
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        self._conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        self.execute(_MIGRATIONS_TABLE_DDL)

    def table_exists(self, table: str) -> bool:
        rows = self.query(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            (self.schema, table),
        )
        return bool(rows)

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None


def _sqlite_path(dsn: str) -> str:
    """``sqlite:///rel.db`` is relative, ``sqlite:////abs.db`` absolute (SQLAlchemy's rule)."""
    rest = dsn[len("sqlite:") :]
    if rest in ("", "//", "///:memory:", "//:memory:"):
        return ":memory:"
    if not rest.startswith("///") or len(rest) == 3:
        raise UserError(
            f'cannot read the SQLite tracking store location "{dsn}".',
            hint="Write sqlite:///relative/path.db, sqlite:////absolute/path.db or a plain file path.",
        )
    return str(Path(rest[3:]).expanduser())


def backend_for(dsn: str, schema: str) -> Backend:
    text = dsn.strip()
    lowered = text.lower()
    if not text:
        raise UserError("the tracking store location is empty.", hint="Give a file path or a postgresql:// URL.")
    if lowered.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        if not _SCHEMA_NAME.match(schema):
            raise UserError(
                f'"{schema}" is not a usable PostgreSQL schema name for the tracking store.',
                hint="Use letters, digits and underscores, starting with a letter.",
            )
        return PostgresBackend(re.sub(r"^postgresql\+psycopg://", "postgresql://", text, flags=re.I), schema)
    if lowered.startswith("sqlite:"):
        return SqliteBackend(_sqlite_path(text))
    if URL_SCHEME.match(text):
        raise UserError(
            f'unsupported tracking store "{mask_dsn(text)}".',
            hint="Use sqlite:///path/to/tracking.db, a file path, or postgresql://user@host/db.",
        )
    return SqliteBackend(str(Path(text).expanduser()))


# -- migrating -----------------------------------------------------------------------------
