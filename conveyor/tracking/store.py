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

import getpass
import json
import os
import re
import secrets
import socket
import sqlite3
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from conveyor import __version__
from conveyor.config.secrets import URL_SCHEME, mask_dsn, scrub_dsn
from conveyor.errors import ConveyorError, UserError
from conveyor.tracking.liveness import Heartbeat, RunLiveness, process_start
from conveyor.tracking.liveness import is_zombie as _is_zombie  # noqa: F401 - kept importable from here
from conveyor.tracking.liveness import pid_alive as _pid_alive
from conveyor.tracking.models import (
    EVENT_STATUSES,
    EXTRACT_STATUSES,
    RUN_STATUSES,
    EventRow,
    ExtractRow,
    ExtractStateRow,
    LockRow,
    RunRow,
    column_names,
    format_ts,
    parse_ts,
    row_from,
)
from conveyor.tracking.pipelines import PipelineState

__all__ = [
    "Migration",
    "TrackingStore",
    "TrackingStoreError",
    "default_dsn",
    "load_migrations",
    "mask_dsn",
    "new_run_id",
]

SQLITE_BUSY_TIMEOUT_S = 30.0
DEFAULT_LOCK_TTL_S = 60.0
RUN_HEARTBEAT_S = 30.0
"""How often a running run's process refreshes ``runs.heartbeat_at`` (see :mod:`.liveness`)."""

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgres))?\.sql$")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_AMBIGUOUS_SHOWN = 5

Params = Sequence[Any]


class TrackingStoreError(ConveyorError):
    """The tracking store cannot be reached, or refused a statement, or lacks a row."""


# -- dsn helpers ---------------------------------------------------------------------------


def default_dsn(project_dir: Path | str) -> str:
    """The default store of a project: ``<project>/.conveyor/tracking.db``."""
    path = Path(project_dir).expanduser().resolve() / ".conveyor" / "tracking.db"
    return f"sqlite:///{path}"


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id: UTC time plus 6 random hex digits, e.g. ``20261121T055940Z-3f9a1c``."""
    moment = (now or _now()).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _now() -> datetime:
    return datetime.now(UTC)


def _to_json(value: Mapping[str, Any] | None) -> str | None:
    # default=str so paths, decimals and datetimes in a summary never make a run fail
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


# -- migrations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One numbered migration, already resolved for one backend."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """Split the file into statements (sqlite's tokenizer knows quotes and comments)."""
        statements: list[str] = []
        buffer = ""
        for line in self.sql.splitlines(keepends=True):
            buffer += line
            if sqlite3.complete_statement(buffer):
                statements.append(buffer.strip())
                buffer = ""
        leftover = [ln for ln in buffer.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if leftover:
            raise ValueError(f"migration {self.version:04d}_{self.name}: statement without a final ';'")
        return statements


def load_migrations(dialect: str) -> list[Migration]:
    """Read the packaged migrations for ``dialect`` (``sqlite`` or ``postgres``), in order.

    A ``NNNN_name.<dialect>.sql`` variant wins over the portable ``NNNN_name.sql``.

    Raises:
        ValueError: a version has no file for this dialect, or its variants disagree on the name.
    """
    root = resources.files("conveyor.tracking").joinpath("migrations")
    found: dict[int, dict[str | None, tuple[str, Any]]] = {}
    for entry in root.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(3)] = (match.group(2), entry)
    migrations = []
    for version in sorted(found):
        variants = found[version]
        if len({name for name, _ in variants.values()}) > 1:
            raise ValueError(f"migration {version:04d} has variants with different names")
        chosen = variants.get(dialect) or variants.get(None)
        if chosen is None:
            raise ValueError(f"migration {version:04d} has no file for {dialect}")
        migrations.append(Migration(version, chosen[0], chosen[1].read_text(encoding="utf-8")))
    return migrations


# -- backends ------------------------------------------------------------------------------


class _Backend:
    """The dialect layer: connection, parameter style, transactions, bootstrap DDL."""

    name = ""
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


class _SqliteBackend(_Backend):
    name = "sqlite"
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
        conn.execute("PRAGMA journal_mode = WAL")
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


class _PostgresBackend(_Backend):
    name = "postgres"

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


def _backend_for(dsn: str, schema: str) -> _Backend:
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
        return _PostgresBackend(re.sub(r"^postgresql\+psycopg://", "postgresql://", text, flags=re.I), schema)
    if lowered.startswith("sqlite:"):
        return _SqliteBackend(_sqlite_path(text))
    if URL_SCHEME.match(text):
        raise UserError(
            f'unsupported tracking store "{mask_dsn(text)}".',
            hint="Use sqlite:///path/to/tracking.db, a file path, or postgresql://user@host/db.",
        )
    return _SqliteBackend(str(Path(text).expanduser()))


# -- migrating -----------------------------------------------------------------------------


def _applied_versions(backend: _Backend) -> dict[int, str]:
    if not backend.table_exists("schema_migrations"):
        return {}
    return {int(r["version"]): r["name"] for r in backend.query("SELECT version, name FROM schema_migrations")}


def _check_known(applied: Mapping[int, str], migrations: Sequence[Migration], where: str) -> None:
    known = {m.version for m in migrations}
    unknown = sorted(set(applied) - known)
    if unknown:
        newest = unknown[-1]
        raise UserError(
            f"the tracking store {where} has schema version {newest} ({applied[newest]}), newer than "
            f"conveyor {__version__} knows (up to {max(known, default=0)}).",
            hint="Upgrade conveyor (pip install -U conveyor) to use this store.",
        )


def migrate(backend: _Backend, migrations: Sequence[Migration], where: str) -> list[int]:
    """Apply the pending migrations in order, one transaction each.

    Args:
        backend: A connected backend.
        migrations: All known migrations, in version order.
        where: The masked DSN, for error messages.

    Returns:
        The versions applied now (empty when the store was up to date).

    Raises:
        UserError: the store has a version this code does not know.
    """
    applied = _applied_versions(backend)
    _check_known(applied, migrations, where)
    done: list[int] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        with backend.transaction():
            backend.bootstrap()
            # another process may have migrated while we waited for the lock
            applied = _applied_versions(backend)
            _check_known(applied, migrations, where)
            if migration.version in applied:
                continue
            for statement in migration.statements():
                backend.execute(statement)
            backend.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, format_ts(_now())),
            )
        done.append(migration.version)
    return done


def _current_user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


# -- the store -----------------------------------------------------------------------------

_RUN_COLUMNS = ", ".join(column_names(RunRow))
_EVENT_COLUMNS = ", ".join(column_names(EventRow))
_EXTRACT_COLUMNS = ", ".join(column_names(ExtractRow))
_STATE_COLUMNS = ", ".join(column_names(ExtractStateRow))
_LOCK_COLUMNS = ", ".join(column_names(LockRow))


class TrackingStore(RunLiveness, PipelineState):
    """Runs, events, extracts, watermarks and locks in SQLite or PostgreSQL.

    Open one with :meth:`open`; all methods are safe to call from several threads.
    """

    def __init__(self, backend: _Backend, dsn: str):
        """Wrap a backend; use :meth:`open` instead, which also migrates."""
        self._backend = backend
        self._dsn = dsn
        self._lock = threading.RLock()
        self._closed = False
        self._host = socket.gethostname()
        self._beats: dict[str, Heartbeat] = {}  # runs this store started and still heartbeats

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
        backend = _backend_for(dsn, schema)
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

    @property
    def location(self) -> str:
        """The DSN with its password masked, for messages."""
        return mask_dsn(self._dsn)

    def schema_versions(self) -> dict[int, str]:
        """The applied migrations, version to name."""
        with self._session() as db:
            return _applied_versions(db)

    @contextmanager
    def _session(self) -> Iterator[_Backend]:
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

    # -- runs ------------------------------------------------------------------------------

    def start_run(
        self,
        command: str,
        *,
        project: str,
        environment: str | None = None,
        pipeline: str | None = None,
        selection: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record a new run with status ``running``, made by this process, and heartbeat it.

        The run records this host, pid and process start time, and a daemon thread refreshes
        its ``heartbeat_at`` every 30 s until :meth:`finish_run` or :meth:`close`. A run whose
        process dies without finishing it is marked ``abandoned`` by its readers (see
        :meth:`abandon_dead_runs`).

        Args:
            command: The command, e.g. ``run``, ``extract``, ``load`` or ``schedule``.
            project: The project's name.
            environment: The target environment, if any.
            pipeline: The scheduled pipeline, if any.
            selection: The selection expression as the user wrote it.
            run_id: A given id; by default a new sortable one (see :func:`new_run_id`).

        Returns:
            The run id.
        """
        run_id = run_id or new_run_id()
        now = format_ts(_now())
        values = (
            run_id, command, project, environment, pipeline, selection, "running", now, self._host, os.getpid(),
            _current_user(), __version__, process_start(os.getpid()), now,
        )  # fmt: skip
        with self._session() as db:
            db.execute(
                "INSERT INTO runs (run_id, command, project, environment, pipeline, selection, status, started_at, "
                "host, pid, username, conveyor_version, process_start, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        self._beats[run_id] = Heartbeat(lambda: self.beat_run(run_id), RUN_HEARTBEAT_S, f"run-heartbeat-{run_id}")
        self._beats[run_id].start()
        return run_id

    def finish_run(
        self, run_id: str, status: str, *, error: str | None = None, summary: Mapping[str, Any] | None = None
    ) -> None:
        """Mark a run finished.

        Args:
            run_id: The run.
            status: ``succeeded``, ``failed``, ``cancelled`` or ``abandoned``. A run marked
                ``abandoned`` that finishes after all takes its real status.
            error: The error that ended the run, if any.
            summary: A JSON-serializable summary (counts per status, ...).

        Raises:
            ValueError: ``status`` is not a final run status.
            TrackingStoreError: there is no such run.
        """
        _check_status(status, RUN_STATUSES - {"running"}, "run")
        self._stop_beat(run_id)  # outside the session: a beat in progress waits for it
        now = _now()
        with self._session() as db:
            started = self._started_at(db, "runs", "run_id", run_id)
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, duration_s = ?, error = ?, summary = ? WHERE run_id = ?",
                (status, format_ts(now), _seconds(started, now), error, _to_json(summary), run_id),
            )

    def list_runs(
        self,
        *,
        limit: int = 20,
        pipeline: str | None = None,
        status: str | None = None,
        command: str | None = None,
        statuses: Sequence[str] = (),
    ) -> list[RunRow]:
        """The most recent runs first, optionally filtered (``statuses``: any of these).

        Runs whose process died are marked ``abandoned`` first (:meth:`abandon_dead_runs`).
        """
        self.abandon_dead_runs()
        clause, params = _where({"pipeline": pipeline, "status": status, "command": command})
        if statuses:
            clause += ("AND " if clause else "WHERE ") + f"status IN ({', '.join('?' * len(statuses))}) "
            params += list(statuses)
        return self._runs(clause, params, limit)

    def get_run(self, run_id_or_prefix: str) -> RunRow:
        """Find one run by its id, a unique prefix of it, or ``last`` / ``latest``.

        Runs whose process died are marked ``abandoned`` first (:meth:`abandon_dead_runs`).

        Raises:
            UserError: nothing matches, or the prefix matches several runs.
        """
        self.abandon_dead_runs()
        key = run_id_or_prefix.strip()
        if key.lower() in ("last", "latest"):
            return self._latest_run()
        if not key:
            raise UserError("an empty run id matches nothing.", hint="Give a run id, a prefix of one, or 'last'.")
        exact = self._runs("WHERE run_id = ? ", [key], 1)
        if exact:
            return exact[0]
        matches = self._runs("WHERE substr(run_id, 1, ?) = ? ", [len(key), key], _AMBIGUOUS_SHOWN + 1)
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UserError(f'no run id starts with "{key}".', hint=self._recent_hint())
        shown = ", ".join(m.run_id for m in matches[:_AMBIGUOUS_SHOWN])
        more = " and more" if len(matches) > _AMBIGUOUS_SHOWN else ""
        raise UserError(
            f'run id prefix "{key}" is ambiguous: it matches {shown}{more}.',
            hint="Give more characters of the run id.",
        )

    def _latest_run(self) -> RunRow:
        runs = self._runs("", [], 1)
        if not runs:
            raise UserError(
                f"no runs are recorded in the tracking store {self.location} yet.",
                hint="Runs appear here once a command such as run, extract or load has started.",
            )
        return runs[0]

    def _recent_hint(self) -> str:
        recent = [run.run_id for run in self._runs("", [], 3)]
        if not recent:
            return "No runs are recorded yet."
        return f"The most recent runs are {', '.join(recent)}; 'last' means the newest."

    def _runs(self, clause: str, params: list[Any], limit: int) -> list[RunRow]:
        sql = f"SELECT {_RUN_COLUMNS} FROM runs {clause}ORDER BY started_at DESC, run_id DESC LIMIT ?"
        with self._session() as db:
            return [row_from(RunRow, row) for row in db.query(sql, [*params, limit])]

    # -- events ----------------------------------------------------------------------------

    def start_event(self, run_id: str, relation: str, step: str, *, detail: Mapping[str, Any] | None = None) -> int:
        """Record that ``step`` of ``relation`` started in ``run_id``; return the event id."""
        with self._session() as db:
            return db.insert_id(
                "INSERT INTO events (run_id, relation, step, status, started_at, detail) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                (run_id, relation, step, format_ts(_now()), _to_json(detail)),
            )

    def finish_event(
        self,
        event_id: int,
        status: str,
        *,
        rows: int | None = None,
        bytes: int | None = None,
        error: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Mark an event finished.

        Args:
            event_id: From :meth:`start_event`.
            status: ``succeeded``, ``failed``, ``skipped`` or ``cancelled``.
            rows: Rows extracted, loaded or built.
            bytes: Bytes written.
            error: The error message when it failed.
            detail: Merged over the detail given at start.

        Raises:
            ValueError: ``status`` is not a final event status.
            TrackingStoreError: there is no such event.
        """
        _check_status(status, EVENT_STATUSES - {"running"}, "event")
        now = _now()
        with self._session() as db:
            found = db.query("SELECT started_at, detail FROM events WHERE id = ?", (event_id,))
            if not found:
                raise TrackingStoreError(f"there is no event {event_id} in the tracking store {self.location}.")
            merged = {**json.loads(found[0]["detail"] or "{}"), **(detail or {})} or None
            started = parse_ts(found[0]["started_at"])
            db.execute(
                "UPDATE events SET status = ?, finished_at = ?, duration_s = ?, rows = ?, bytes = ?, "
                "error = ?, detail = ? WHERE id = ?",
                (status, format_ts(now), _seconds(started, now), rows, bytes, error, _to_json(merged), event_id),
            )

    def record_event(
        self,
        run_id: str,
        relation: str,
        step: str,
        status: str,
        *,
        started_at: datetime,
        finished_at: datetime,
        rows: int | None = None,
        bytes: int | None = None,
        error: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Record a finished event in one call (a skipped step, say); return its id.

        Raises:
            ValueError: a bad status, or a naive datetime.
        """
        _check_status(status, EVENT_STATUSES - {"running"}, "event")
        values = (
            run_id, relation, step, status, format_ts(started_at), format_ts(finished_at),
            _seconds(started_at, finished_at), rows, bytes, error, _to_json(detail),
        )  # fmt: skip
        with self._session() as db:
            return db.insert_id(
                "INSERT INTO events (run_id, relation, step, status, started_at, finished_at, duration_s, "
                "rows, bytes, error, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )

    def run_events(self, run_id: str) -> list[EventRow]:
        """The events of one run, in the order they started."""
        with self._session() as db:
            rows = db.query(f"SELECT {_EVENT_COLUMNS} FROM events WHERE run_id = ? ORDER BY id", (run_id,))
        return [row_from(EventRow, row) for row in rows]

    # -- extracts --------------------------------------------------------------------------

    def start_extract(
        self, run_id: str, source: str, table: str, extract_id: str, *, upstream_table: str | None = None
    ) -> None:
        """Record an extract attempt of relation ``table`` of ``source`` and make it the latest.

        Rows are keyed by the relation (the design's name), so two designs over one upstream
        table keep separate rows; ``upstream_table`` says which upstream table it reads.
        Rows written before migration 0004 have none: they are keyed by the upstream table.
        """
        now = format_ts(_now())
        with self._session() as db, db.transaction():
            db.execute(
                "INSERT INTO extracts (extract_id, run_id, source, table_name, upstream_table, status, started_at) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?)",
                (extract_id, run_id, source, table, upstream_table, now),
            )
            db.execute(
                "INSERT INTO extract_state (source, table_name, upstream_table, status, last_extract_id, "
                "last_run_id, started_at) VALUES (?, ?, ?, 'running', ?, ?, ?) "
                "ON CONFLICT (source, table_name) DO UPDATE SET status = excluded.status, "
                "upstream_table = excluded.upstream_table, "
                "last_extract_id = excluded.last_extract_id, last_run_id = excluded.last_run_id, "
                "started_at = excluded.started_at, finished_at = NULL, rows = NULL, bytes = NULL, error = NULL",
                (source, table, upstream_table, extract_id, run_id, now),
            )

    def finish_extract(
        self,
        extract_id: str,
        status: str,
        *,
        rows: int | None = None,
        bytes: int | None = None,
        watermark_low: str | None = None,
        watermark_high: str | None = None,
        manifest_path: str | None = None,
        error: str | None = None,
    ) -> None:
        """Finish an extract attempt and update the table's state.

        Only a ``succeeded`` attempt moves ``last_success_*`` and the watermark (to
        ``watermark_high``); a failed one never touches the watermark. A successful
        attempt without ``watermark_high`` (an incremental extract that found no new rows)
        keeps the previous watermark: use :meth:`reset_watermark` to clear it.

        Raises:
            ValueError: ``status`` is not ``succeeded`` or ``failed``.
            TrackingStoreError: there is no such extract.
        """
        _check_status(status, EXTRACT_STATUSES - {"running", "abandoned"}, "extract")
        now = _now()
        with self._session() as db, db.transaction():
            found = db.query("SELECT source, table_name, started_at FROM extracts WHERE extract_id = ?", (extract_id,))
            if not found:
                raise TrackingStoreError(f'there is no extract "{extract_id}" in the tracking store {self.location}.')
            key = (found[0]["source"], found[0]["table_name"])
            db.execute(
                "UPDATE extracts SET status = ?, finished_at = ?, duration_s = ?, rows = ?, bytes = ?, "
                "watermark_low = ?, watermark_high = ?, manifest_path = ?, error = ? WHERE extract_id = ?",
                (status, format_ts(now), _seconds(parse_ts(found[0]["started_at"]), now), rows, bytes,
                 watermark_low, watermark_high, manifest_path, error, extract_id),
            )  # fmt: skip
            # a stale attempt finishing late must not overwrite the newer attempt's status
            db.execute(
                "UPDATE extract_state SET status = ?, finished_at = ?, rows = ?, bytes = ?, error = ? "
                "WHERE source = ? AND table_name = ? AND last_extract_id = ?",
                (status, format_ts(now), rows, bytes, error, *key, extract_id),
            )
            if status == "succeeded":
                db.execute(
                    "UPDATE extract_state SET last_success_extract_id = ?, last_success_at = ?, "
                    "watermark = COALESCE(?, watermark) WHERE source = ? AND table_name = ?",
                    (extract_id, format_ts(now), watermark_high, *key),
                )

    def get_extract(self, extract_id: str) -> ExtractRow | None:
        """One extract attempt, or ``None``."""
        with self._session() as db:
            rows = db.query(f"SELECT {_EXTRACT_COLUMNS} FROM extracts WHERE extract_id = ?", (extract_id,))
        return row_from(ExtractRow, rows[0]) if rows else None

    def list_extracts(
        self, *, run_id: str | None = None, source: str | None = None, table: str | None = None, limit: int = 50
    ) -> list[ExtractRow]:
        """Extract attempts, newest first, optionally filtered (those of dead runs read ``abandoned``)."""
        self.abandon_dead_runs()
        clause, params = _where({"run_id": run_id, "source": source, "table_name": table})
        sql = f"SELECT {_EXTRACT_COLUMNS} FROM extracts {clause}ORDER BY started_at DESC, extract_id DESC LIMIT ?"
        with self._session() as db:
            return [row_from(ExtractRow, row) for row in db.query(sql, [*params, limit])]

    def extract_state(self, source: str | None = None, table: str | None = None) -> list[ExtractStateRow]:
        """The state of every extracted table (or of one source, or one table), sorted.

        A table whose latest attempt belonged to a run that died reads ``abandoned``.
        """
        self.abandon_dead_runs()
        clause, params = _where({"source": source, "table_name": table})
        sql = f"SELECT {_STATE_COLUMNS} FROM extract_state {clause}ORDER BY source, table_name"
        with self._session() as db:
            return [row_from(ExtractStateRow, row) for row in db.query(sql, params)]

    def watermark(self, source: str, table: str) -> str | None:
        """The committed high-water mark of ``source.table`` (a typed JSON string), or ``None``."""
        with self._session() as db:
            rows = db.query("SELECT watermark FROM extract_state WHERE source = ? AND table_name = ?", (source, table))
        return rows[0]["watermark"] if rows else None

    def reset_watermark(self, source: str, table: str) -> None:
        """Forget the watermark of ``source.table`` so that its next extract is a full one."""
        with self._session() as db:
            db.execute("UPDATE extract_state SET watermark = NULL WHERE source = ? AND table_name = ?", (source, table))

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
        now = _now()
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
            lock_for_update = " FOR UPDATE" if db.name == "postgres" else ""
            rows = db.query(f"SELECT {_LOCK_COLUMNS} FROM locks WHERE name = ?{lock_for_update}", (name,))
            if not rows:
                return False  # released between our insert and select: the caller retries
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
        return current.host == self._host and not _pid_alive(current.pid)

    def refresh_lock(self, name: str, holder: str, ttl_s: float = DEFAULT_LOCK_TTL_S) -> bool:
        """Extend a held lock by ``ttl_s`` from now; ``False`` when it is no longer ours."""
        now = _now()
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
            rows = db.query(f"SELECT {_LOCK_COLUMNS} FROM locks WHERE name = ?", (name,))
        return row_from(LockRow, rows[0]) if rows else None

    # -- helpers ---------------------------------------------------------------------------

    def _started_at(self, db: _Backend, table: str, key: str, value: str) -> datetime | None:
        rows = db.query(f"SELECT started_at FROM {table} WHERE {key} = ?", (value,))
        if not rows:
            raise TrackingStoreError(f'there is no {table[:-1]} "{value}" in the tracking store {self.location}.')
        return parse_ts(rows[0]["started_at"])


def _check_status(status: str, allowed: frozenset[str], what: str) -> None:
    if status not in allowed:
        raise ValueError(f"{status!r} is not a final {what} status; use one of {sorted(allowed)}")


def _seconds(started: datetime | None, finished: datetime) -> float | None:
    return None if started is None else (finished - started).total_seconds()


def _where(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """A ``WHERE ... `` clause (with trailing space) and its parameters for the non-None filters."""
    given = {column: value for column, value in filters.items() if value is not None}
    if not given:
        return "", []
    return "WHERE " + " AND ".join(f"{column} = ?" for column in given) + " ", list(given.values())
