"""PostgreSQL, a warehouse server: build into ``<schema>$staging``, publish by renaming schemas.

A build creates one staging schema per rebuilt schema, loads and builds every relation
there (several threads, one connection each), checks keys, and publishes in one
transaction that renames ``<schema>`` to ``<schema>$backup`` and ``<schema>$staging`` to
``<schema>``. Readers never see a mix: the publishing transaction first takes ACCESS
EXCLUSIVE locks on every published relation of the rebuilt schemas, so a query that
starts while it runs waits, and once it commits, looks its names up again and finds the
new relations. Views in other schemas that read a rebuilt relation are bound to it by
OID and would follow it into ``$backup``, so they are recreated from their definitions in
the same transaction. See docs/warehouses.md.

Source tables are loaded with ``COPY ... FROM STDIN (FORMAT binary, FREEZE)`` fed by
:mod:`conveyor.warehouse.pgcopy`, which encodes Parquet batches in a second thread while
the server ingests the previous ones.

``update`` and ``upgrade`` change the published schemas in place through
:class:`PostgresTransaction` (one transaction for ``update``), and ``unload`` reads relations
back as Arrow through the PostgreSQL source's exact conversions.
"""

from __future__ import annotations

import logging
import queue
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg.conninfo import conninfo_to_dict

from conveyor.config.secrets import mask_dsn, scrub, scrub_dsn
from conveyor.config.settings import EnvironmentConfig
from conveyor.design.models import TableDesign
from conveyor.errors import LoadError, WarehouseError
from conveyor.faults import crash_point
from conveyor.graph.splice import limit_zero
from conveyor.lake.manifest import Manifest
from conveyor.warehouse import ddl
from conveyor.warehouse.base import (
    Build,
    KeyViolation,
    Transaction,
    Warehouse,
    key_constraints,
    literal,
    qualified,
    quote,
    unchecked_not_null,
)
from conveyor.warehouse.pgcopy import SIGNATURE, TRAILER, CopyEncoder, EncodeError, PgColumn

log = logging.getLogger("conveyor.warehouse.postgres")

STAGING = "$staging"
"""Suffix of the schema a rebuilt schema is built in."""
BACKUP = "$backup"
"""Suffix of the previous version of a schema after publishing (kept when ``keep_backup``)."""
LOCK_CLASS = 0x436F6E76  # "Conv": first key of the advisory locks of loads (second: the schema)
MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names (NAMEDATALEN - 1 bytes)

PUBLISH_LOCK_TIMEOUT_MS = 500
"""How long one publish attempt waits for a relation a reader holds (readers queued behind it
wait as long), before it lets go and tries again."""
PUBLISH_PATIENCE_S = 120.0
"""How long publishing keeps trying before it reports the queries that hold the relations."""
BATCH_BYTES = 4 * 1024 * 1024
"""Uncompressed Parquet bytes per batch read and encoded."""
QUEUE_DEPTH = 4
"""Encoded chunks waiting for the server: bounds a load's memory."""

_BUILD_MARK = "conveyor build "
_RELATION_KINDS = {"r": "table", "p": "table", "f": "table", "v": "view", "m": "view"}


def _libpq_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style ``postgresql+driver://`` URLs too."""
    return re.sub(r"^postgres(?:ql)?\+[A-Za-z0-9_]+://", "postgresql://", dsn)


def _end_with_client(con: psycopg.Connection[Any]) -> None:
    """Have the server end this session's statement soon after the client is gone.

    A killed load (SIGKILL) leaves its statements running on the server, holding locks on the
    staging objects until they finish, which could be hours; ``load --resume`` would wait
    for them. Servers from PostgreSQL 14 check the client's socket every 2 s while a statement
    runs and cancel it once the client has gone; older ones (and Redshift) do not.
    """
    if con.info.server_version >= 140000:
        with suppress(psycopg.Error):
            con.execute("SET client_connection_check_interval = '2s'")


def _lock_key(schema: str) -> int:
    """The second advisory lock key of a schema: a stable signed 32-bit hash of its name."""
    value = zlib.crc32(schema.encode())
    return value - 2**32 if value >= 2**31 else value


def _message(exc: BaseException) -> str:
    """A PostgreSQL error in one line: message, detail, hint and where it happened."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if diag is None or not primary:
        return " ".join(str(exc).split())
    parts = [primary]
    for extra in (diag.message_detail, diag.message_hint, diag.context):
        if extra:
            parts.append(" ".join(extra.split()))
    return "; ".join(parts)


class PostgresWarehouse(Warehouse):
    """A PostgreSQL database (13+)."""

    ENGINE = "postgres"
    DIALECT = "postgres"
    SUPPORTS_SCHEMA_RENAME = True
    SUPPORTS_TRANSACTIONAL_DDL = True
    PUBLISH = "schema_swap"
    ENFORCES_KEYS_ON_LOAD = False
    MAX_DECIMAL_PRECISION = 1000
    """Keys are checked before publishing (with examples), not declared: see docs/warehouses.md."""

    def __init__(self, name: str, dsn: str, *, root: Path | None = None, config: EnvironmentConfig | None = None):
        super().__init__(name, dsn)
        self.keep_backup = config.keep_backup if config else True
        self.readers = list(config.readers) if config else []
        self.writers = list(config.writers) if config else []

    def describe(self) -> str:
        try:
            info = conninfo_to_dict(_libpq_dsn(self.dsn))
        except psycopg.Error:
            return f"PostgreSQL {mask_dsn(self.dsn)}"
        host = info.get("host") or info.get("hostaddr") or "localhost"
        port = info.get("port") or "5432"
        user = f"{info['user']}@" if info.get("user") else ""
        return f"PostgreSQL {user}{host}:{port}/{info.get('dbname') or info.get('user') or ''}"

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection; failures become a WarehouseError without secrets."""
        options: dict[str, Any] = {"autocommit": True, "client_encoding": "UTF8"}
        try:
            given = conninfo_to_dict(_libpq_dsn(self.dsn))
            defaults = {"application_name": "conveyor", "connect_timeout": 15}
            options.update({key: value for key, value in defaults.items() if key not in given})
            con = psycopg.connect(_libpq_dsn(self.dsn), **options)
        except psycopg.Error as exc:
            text = scrub(scrub_dsn(_message(exc), self.dsn))
            raise WarehouseError(
                f'cannot connect to the PostgreSQL warehouse "{self.name}" ({mask_dsn(self.dsn)}): {text}',
                hint="Check that the server is running and the environment's dsn in conveyor.yaml "
                "(host, port, database, user and the password variable).",
            ) from None
        _end_with_client(con)
        return con

    def kept_build(self, run_id: str) -> bool | None:
        """Whether a staging schema marked with the run is there (publishing renames it away)."""
        with closing(self.connect()) as con:
            try:
                row = con.execute(
                    "SELECT count(*) FROM pg_namespace WHERE right(nspname, %s) = %s "
                    "AND obj_description(oid, 'pg_namespace') = %s",
                    (len(STAGING), STAGING, _BUILD_MARK + run_id),
                ).fetchone()
            except psycopg.Error:
                return None  # a catalog that cannot tell (the resume then finds out)
        return bool(row and row[0])

    def begin(
        self, schemas: Sequence[str], *, run_id: str, keep_schemas: bool = True, resume_from: str | None = None
    ) -> PostgresBuild:
        if not keep_schemas:
            raise WarehouseError(
                "a PostgreSQL warehouse is a shared database: a load replaces only the schemas it rebuilds "
                "and never drops the others (keep_schemas=False is not supported)."
            )
        return PostgresBuild(self, list(schemas), run_id, resume_from)

    def transaction(
        self,
        *,
        run_id: str,
        atomic: bool = True,
        lock_timeout_s: float = 0.0,
        waiting: Callable[[str], None] | None = None,
    ) -> PostgresTransaction:
        return PostgresTransaction(self, run_id=run_id, atomic=atomic, lock_timeout_s=lock_timeout_s, waiting=waiting)

    @contextmanager
    def read_relation(self, name: str, batch_rows: int = 65_536) -> Iterator[pa.RecordBatchReader]:
        """Stream a published relation in the lake's exact types.

        It is read like a PostgreSQL source table (ADBC's binary COPY, then the source's exact
        conversions): numeric(p,s) is decimal128(p,s) (unconstrained numeric is decimal(38,9),
        and a value that does not fit is an error), timestamptz is timestamp[us, UTC], uuid
        and json/jsonb keep their Arrow extension types, bytea is binary, arrays are lists.
        """
        from conveyor.errors import ConveyorError, ExtractError, TransientError
        from conveyor.sources.base import ReadRequest
        from conveyor.sources.postgres import PostgresSource

        if name not in self.relations():
            raise WarehouseError(f'"{name}" is not published in {self.describe()}.', hint='Run "conveyor load" first.')
        schema, _, table = name.partition(".")
        source = PostgresSource(self.name, _libpq_dsn(self.dsn))
        batches: Iterator[pa.RecordBatch] | None = None
        try:
            try:
                info = source.describe(schema, table)
                odd = [f"{c.name} ({c.native_type})" for c in info.columns if c.type is None]
                if odd:
                    raise ExtractError(f"column(s) {', '.join(odd)} have no exact design type.")
                columns = tuple((c.name, c.type) for c in info.columns if c.type is not None)
                request = ReadRequest(schema, table, columns, batch_rows=batch_rows)
                batches = source.read(request)
                reader = pa.RecordBatchReader.from_batches(request.arrow_schema, batches)
            except ConveyorError as exc:
                raise WarehouseError(f'reading "{name}" from {self.describe()} failed: {exc.message}') from None
            try:
                yield reader
            except (ExtractError, TransientError) as exc:  # the stream broke while being read
                raise WarehouseError(f'reading "{name}" from {self.describe()} failed: {exc.message}') from None
        finally:
            close = getattr(batches, "close", None)  # ends the COPY and its connection
            if close is not None:
                with suppress(Exception):
                    close()
            source.close()

    def relations(self) -> dict[str, str]:
        with self.connect() as con:
            rows = con.execute(
                """
                SELECT n.nspname, c.relname, c.relkind
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND NOT c.relispartition
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
                  AND n.nspname NOT LIKE %s AND n.nspname NOT LIKE %s
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                  AND d.objid = c.oid AND d.deptype = 'e')
                ORDER BY 1, 2
                """,
                ("%" + STAGING, "%" + BACKUP),
            ).fetchall()
        return {f"{schema}.{name}": _RELATION_KINDS[kind] for schema, name, kind in rows}


class PostgresBuild(Build):
    """One build: staging schemas, a lock connection that publishes, and a connection per thread."""

    FREEZE = True
    """COPY with FREEZE: every table is created in the transaction that fills it."""

    def __init__(self, warehouse: PostgresWarehouse, schemas: list[str], run_id: str, resume_from: str | None = None):
        self.warehouse = warehouse
        self.schemas = sorted(set(schemas))
        self.run_id = run_id
        self.build_id = resume_from or run_id
        """The run whose staging this is (a resumed build continues another run's)."""
        self._local = threading.local()
        self._pool: list[psycopg.Connection[Any]] = []
        self._pool_lock = threading.Lock()
        self._finished = False
        self._owns_staging = False  # abort drops staging only once it is this build's
        for schema in self.schemas:
            longest = schema + max(STAGING, BACKUP, key=len)
            if len(longest.encode()) > MAX_IDENTIFIER:
                raise WarehouseError(
                    f'schema name "{schema}" is too long for PostgreSQL staging: "{longest}" exceeds '
                    f"{MAX_IDENTIFIER} bytes.",
                    hint="Use a shorter schema name.",
                )
        self.con = warehouse.connect()
        try:
            self._lock()
            self._check_roles()
            if resume_from:
                self._check_resumable(resume_from)
            else:
                self._create_staging()
            self._owns_staging = True
        except BaseException:
            self.abort()
            raise

    # ------------------------------------------------------------------ setup

    def _lock(self) -> None:
        """One session advisory lock per schema, held by ``self.con`` until publish or abort."""
        for schema in self.schemas:
            lock_schema(self.con, schema, self.warehouse.name)

    def _check_roles(self) -> None:
        wanted = sorted({*self.warehouse.readers, *self.warehouse.writers})
        if not wanted:
            return
        found = {r[0] for r in self.con.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (wanted,))}
        missing = [role for role in wanted if role not in found]
        if missing:
            raise WarehouseError(
                f'role(s) {", ".join(missing)} named in readers/writers of environment "{self.warehouse.name}" '
                "do not exist in the warehouse.",
                hint="Create them (CREATE ROLE name NOLOGIN) or remove them from conveyor.yaml.",
            )

    def _create_staging(self) -> None:
        """Drop what a crashed or suspended build left (the lock proves none runs); create empty staging.

        Each staging schema's comment names the run it belongs to, so a resume can tell.
        """
        with self.con.transaction():
            for schema in self.schemas:
                staging = quote(schema + STAGING)
                self.con.execute(f"DROP SCHEMA IF EXISTS {staging} CASCADE")
                self.con.execute(f"CREATE SCHEMA {staging}")
                self.con.execute(f"COMMENT ON SCHEMA {staging} IS {literal(_BUILD_MARK + self.build_id)}")

    def _check_resumable(self, run_id: str) -> None:
        rows = self.con.execute(
            "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = ANY(%s)",
            ([s + STAGING for s in self.schemas],),
        ).fetchall()
        marks = dict(rows)
        if any(marks.get(s + STAGING) != _BUILD_MARK + run_id for s in self.schemas):
            raise WarehouseError(
                f"the build of run {run_id} is no longer there to resume (another load replaced it).",
                hint="Run the load again without --resume.",
            )

    # ------------------------------------------------------------------ connections

    def staged(self, name: str) -> str:
        schema, _, table = name.partition(".")
        return f"{schema}{STAGING}.{table}" if schema in self.schemas else name

    def _connection(self) -> psycopg.Connection[Any]:
        con: psycopg.Connection[Any] | None = getattr(self._local, "con", None)
        if con is None or con.closed or con.broken:
            if self._finished:
                raise WarehouseError("this build is already published or abandoned.")
            con = self.warehouse.connect()
            with self._pool_lock:
                self._pool.append(con)
            self._local.con = con
        return con

    @contextmanager
    def _transaction(self, design: TableDesign, doing: str = "building") -> Iterator[psycopg.Connection[Any]]:
        """A transaction on this thread's connection; PostgreSQL errors become a LoadError."""
        con = self._connection()
        try:
            with con.transaction():
                restore = set_search_path(con, self.bound_schemas())
                yield con
                if restore is not None:
                    con.execute("SELECT set_config('search_path', %s, true)", (restore,))
        except psycopg.Error as exc:
            raise LoadError(f'{doing} "{design.name}" failed in PostgreSQL: {_message(exc)}') from None

    # ------------------------------------------------------------------ relations

    def load_table(self, design: TableDesign, manifest: Manifest) -> int:
        _require_columns(design, manifest)
        target = self.staged(design.name)
        with self._transaction(design, "loading") as con:
            con.execute(ddl.create_table(design, "postgres", name=target))
            rows = self._copy(con, design, manifest, target)
            for statement in ddl.comments(design, name=target):
                con.execute(statement)
        return rows

    def merge_table(self, design: TableDesign, manifest: Manifest) -> int:
        """COPY an incremental extract into a temporary table, then replace rows by primary key."""
        target = qualified(self.staged(design.name))
        _require_columns(design, manifest)
        with self._transaction(design, "merging into") as con:
            con.execute("DROP TABLE IF EXISTS pg_temp.incoming")
            con.execute(f"CREATE TEMPORARY TABLE incoming (LIKE {target}) ON COMMIT DROP")
            self._copy(con, design, manifest, "pg_temp.incoming")
            key = design.constraints.primary_key
            if key:
                keys = ", ".join(quote(c) for c in key)
                match = " AND ".join(f"{target}.{quote(c)} = i.{quote(c)}" for c in key)
                con.execute(f"DELETE FROM {target} USING (SELECT DISTINCT {keys} FROM incoming) AS i WHERE {match}")
            crash_point("warehouse.merge.mid")
            columns = ", ".join(quote(c.name) for c in design.loaded_columns)
            rows = con.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM incoming").rowcount
            # several merges can share one transaction (update): the next creates it again
            con.execute("DROP TABLE pg_temp.incoming")
        return max(rows, 0)

    def _copy(
        self,
        con: psycopg.Connection[Any],
        design: TableDesign,
        manifest: Manifest,
        table: str,
        *,
        freeze: bool | None = None,
    ) -> int:
        """COPY an extract into ``table``; errors name the relation.

        With ``freeze`` (the default of builds) the table must have been created in the current
        (sub)transaction.
        """
        try:
            # char(n) loads without its trailing blanks on every warehouse (docs/types.md)
            padded = [c.name for c in design.loaded_columns if c.sql_type.name == "char" and not c.sql_type.is_array]
            encoder = CopyEncoder(table_columns(con, table), manifest.arrow_schema, rtrim=padded)
        except EncodeError as exc:
            raise LoadError(
                f'the extract {manifest.extract_id} of "{design.name}" cannot be loaded into PostgreSQL '
                f"exactly: {exc}.",
                hint="Make the design's column type match the extract, then re-extract the table.",
            ) from None
        try:
            return copy_parquet(
                con,
                table,
                encoder,
                manifest.paths(),
                manifest.arrow_schema,
                freeze=self.FREEZE if freeze is None else freeze,
            )
        except EncodeError as exc:
            raise LoadError(f'loading "{design.name}" from extract {manifest.extract_id} failed: {exc}.') from None
        except (OSError, pa.ArrowException) as exc:
            raise LoadError(
                f'reading extract {manifest.extract_id} of "{design.name}" failed: {exc}.',
                hint=f'Re-extract it: "conveyor extract {design.name} --full".',
            ) from None

    def drop(self, name: str) -> None:
        """Drop a relation from staging if it is there (a leftover of the build being resumed)."""
        target = self.staged(name)
        con = self._connection()
        try:
            with con.transaction():
                row = con.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (qualified(target),))
                kind = row.fetchone()
                if kind:
                    con.execute(f"DROP {'VIEW' if kind[0] == 'v' else 'TABLE'} {qualified(target)}")
        except psycopg.Error as exc:
            raise LoadError(f'dropping the unfinished "{name}" failed in PostgreSQL: {_message(exc)}') from None

    def output_columns(self, design: TableDesign, sql: str) -> list[str]:
        """Names of the columns a query produces, without reading any row."""
        with self._transaction(design) as con:
            cursor = con.execute(limit_zero(sql, "postgres"))
            return [column.name for column in cursor.description or []]

    def _check_columns(self, design: TableDesign, sql: str) -> None:
        if not design.columns:
            return
        produced = self.output_columns(design, sql)
        expected = [c.name for c in design.loaded_columns]  # skipped columns are never in the warehouse
        if produced != expected:
            raise LoadError(
                f'the SQL of "{design.name}" produces columns ({", ".join(produced)}) '
                f"but the design lists ({', '.join(expected)}).",
                hint="Make the SELECT list and the design's columns agree, in the same order.",
            )

    def create_table(self, design: TableDesign, sql: str) -> int:
        self._check_columns(design, sql)
        target = qualified(self.staged(design.name))
        typed = bool(design.columns) and all(c.type for c in design.columns)
        with self._transaction(design) as con:
            if typed:
                con.execute(ddl.create_table(design, "postgres", name=self.staged(design.name)))
                rows = con.execute(f"INSERT INTO {target} {sql}").rowcount
            else:
                rows = con.execute(f"CREATE TABLE {target} AS {sql}").rowcount
            for statement in ddl.comments(design, name=self.staged(design.name)):
                con.execute(statement)
        return max(rows, 0)

    def create_view(self, design: TableDesign, sql: str) -> None:
        self._check_columns(design, sql)
        with self._transaction(design) as con:
            con.execute(f"CREATE VIEW {qualified(self.staged(design.name))} AS {sql}")
            for statement in ddl.comments(design, name=self.staged(design.name), view=True):
                con.execute(statement)

    def check(self, design: TableDesign) -> list[KeyViolation]:
        found = [self._nulls(design, column) for column in unchecked_not_null(design)]
        found += [self._duplicates(design, constraint, columns) for constraint, columns in key_constraints(design)]
        return [violation for violation in found if violation is not None]

    def _nulls(self, design: TableDesign, column: str) -> KeyViolation | None:
        """NOT NULL is in the DDL of typed tables; untyped CTAS tables are checked here."""
        table = qualified(self.staged(design.name))
        with self._transaction(design, "checking") as con:
            row = con.execute(f"SELECT count(*) FROM {table} WHERE {quote(column)} IS NULL").fetchone()
        count = int(row[0]) if row else 0
        return KeyViolation(design.name, "not_null", (column,), (), count) if count else None

    def _duplicates(self, design: TableDesign, constraint: str, columns: list[str]) -> KeyViolation | None:
        cols = ", ".join(quote(c) for c in columns)
        table = qualified(self.staged(design.name))
        # rows with a NULL in the key are not duplicates (SQL unique semantics)
        present = " AND ".join(f"{quote(c)} IS NOT NULL" for c in columns)
        with self._transaction(design, "checking") as con:
            rows = con.execute(
                f"SELECT {cols}, count(*) OVER () AS n FROM {table} WHERE {present} GROUP BY {cols} "
                f"HAVING count(*) > 1 ORDER BY {cols} LIMIT 5"
            ).fetchall()
        if not rows:
            return None
        examples = tuple("(" + ", ".join(repr(v) for v in row[:-1]) + ")" for row in rows)
        return KeyViolation(design.name, constraint, tuple(columns), examples, int(rows[0][-1]))

    # ------------------------------------------------------------------ publish / abort

    def publish(self) -> None:
        if self._finished:
            raise WarehouseError("this build is already published or abandoned.")
        self._close_pool()
        try:
            self._publish_retrying()
        except psycopg.Error as exc:
            self.abort()
            raise WarehouseError(
                f'publishing to the PostgreSQL warehouse "{self.warehouse.name}" failed: {_message(exc)}'
            ) from None
        except BaseException:
            self.abort()
            raise
        self._finished = True
        self._release()

    def _publish_retrying(self) -> None:
        """Run the publishing transaction until it has every lock it needs (or patience runs out).

        Readers lock relations one at a time, in the order of their query, and keep the
        locks to the end of the statement; the publisher needs all of them. If it waited
        for one lock while holding others, a reader holding that one and wanting another
        would deadlock with it. So an attempt takes every lock with NOWAIT; when one is
        taken, the attempt rolls back (releasing the rest) and the next one first waits
        for that relation alone, holding nothing, for at most ``lock_timeout``. The
        publisher never waits while it holds a lock, and a reader never waits longer than
        one such wait. Views are locked last (locking a view locks the tables it reads,
        which the attempt then already holds) and never waited for.
        """
        deadline = time.monotonic() + PUBLISH_PATIENCE_S
        blocker: str | None = None  # a table to wait for before the next attempt
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.con.transaction():
                    self._swap(blocker)
                return
            except _Blocked as blocked:
                cause = blocked.cause
                # waiting to lock a view would lock its tables while holding the view: poll instead
                blocker = None if blocked.view else blocked.relation
                if blocked.view:
                    time.sleep(random.uniform(0.002, 0.02))
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
                cause = exc
                time.sleep(random.uniform(0.005, 0.05))
            log.debug("publish attempt %d could not lock every relation: %s", attempt, _message(cause))
            if time.monotonic() > deadline:
                raise WarehouseError(
                    f'publishing to the PostgreSQL warehouse "{self.warehouse.name}" gave up after {attempt} '
                    f"attempts in {PUBLISH_PATIENCE_S:.0f} s to lock the relations it replaces: {_message(cause)}",
                    hint="Long-running queries read them; load again when they are done.",
                )

    def _swap(self, blocker: str | None) -> None:
        """The publishing transaction (run by ``publish``, retried when a lock is not free)."""
        con = self.con
        con.execute(f"SET LOCAL lock_timeout = {PUBLISH_LOCK_TIMEOUT_MS}")
        if blocker is not None:
            found = con.execute("SELECT to_regclass(%s)", (blocker,)).fetchone()
            if found and found[0] is not None:
                con.execute(f"LOCK TABLE {blocker} IN ACCESS EXCLUSIVE MODE")  # waits, holding nothing else
        # view definitions printed with every name schema-qualified
        con.execute("SET LOCAL search_path = pg_catalog")
        existing = {
            r[0] for r in con.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (self.schemas,))
        }
        dependents = dependent_views(con, self.schemas)
        # readers block on these until commit, then look their names up again and see the new
        # schema; tables first, then views (a view's lock takes its tables' locks too)
        tables, views = _published(con, sorted(existing))
        views += [f"{v.schema}.{v.name}" for v in dependents]
        for relation, is_view in [(t, False) for t in tables] + [(v, True) for v in views]:
            try:
                con.execute(f"LOCK TABLE {qualified(relation)} IN ACCESS EXCLUSIVE MODE NOWAIT")
            except psycopg.errors.LockNotAvailable as exc:
                raise _Blocked(qualified(relation), exc, view=is_view) from None
        if dependents:
            con.execute("DROP VIEW " + ", ".join(qualified(f"{v.schema}.{v.name}") for v in dependents))
        for schema in self.schemas:
            backup = quote(schema + BACKUP)
            con.execute(f"DROP SCHEMA IF EXISTS {backup} CASCADE")
            if schema in existing:
                con.execute(f"ALTER SCHEMA {quote(schema)} RENAME TO {backup}")
            con.execute(f"ALTER SCHEMA {quote(schema + STAGING)} RENAME TO {quote(schema)}")
        for view in dependents:
            view.recreate(con)
        if not self.warehouse.keep_backup:
            for schema in self.schemas:
                con.execute(f"DROP SCHEMA IF EXISTS {quote(schema + BACKUP)} CASCADE")
        self._grant(con)
        crash_point("pg.publish.before_commit")

    def _grant(self, con: psycopg.Connection[Any]) -> None:
        for schema in self.schemas:
            target = quote(schema)
            for role in self.warehouse.readers:
                con.execute(f"GRANT USAGE ON SCHEMA {target} TO {quote(role)}")
                con.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {target} TO {quote(role)}")
            for role in self.warehouse.writers:
                con.execute(f"GRANT USAGE, CREATE ON SCHEMA {target} TO {quote(role)}")
                con.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA {target} TO {quote(role)}")

    def suspend(self) -> None:
        """Keep the staging schemas for ``--resume``; the published warehouse is untouched."""
        self._close_pool()
        self._finished = True
        self._release()

    def abort(self) -> None:
        self._close_pool()
        if not self._finished and self._owns_staging and not self.con.closed:
            try:
                if self.con.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    self.con.rollback()
                for schema in self.schemas:
                    self.con.execute(f"DROP SCHEMA IF EXISTS {quote(schema + STAGING)} CASCADE")
            except psycopg.Error as exc:  # the next build drops the leftovers
                log.warning("could not drop staging schemas: %s", _message(exc))
        self._finished = True
        self._release()

    def _close_pool(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for con in pool:
            with suppress(psycopg.Error):
                con.close()

    def _release(self) -> None:
        """Close the lock connection, which releases the advisory locks."""
        con = getattr(self, "con", None)
        if con is not None and not con.closed:
            with suppress(psycopg.Error):
                con.execute("SELECT pg_advisory_unlock_all()")
            con.close()


class PostgresTransaction(PostgresBuild, Transaction):
    """In-place changes to the published schemas (``update``, ``upgrade``), on one connection.

    Atomic transactions (``update``) run everything in one PostgreSQL transaction, each
    step in a savepoint: DDL is transactional in PostgreSQL, so readers see the old state
    until the commit and the new one after it, and a failure rolls everything back.
    Non-atomic ones (``upgrade``) commit each step (a relation's DDL, data and comments) on
    its own. ``staged(name)`` is the identity: the published relations are changed directly.

    How relations are replaced, chosen so readers keep reading without waiting:

    - Source tables: ``DELETE`` all rows, then COPY the extract (and merge increments by
      primary key). ``DELETE`` rather than ``TRUNCATE``: TRUNCATE takes an ACCESS EXCLUSIVE
      lock until the commit, blocking every reader of the table for the whole update (and
      is not MVCC-safe for older snapshots), while ``DELETE`` leaves readers on the old rows
      until the commit; the price is dead rows for autovacuum. The table is recreated only
      when its columns no longer match the design.
    - CTAS relations: ``DELETE`` + ``INSERT ... SELECT`` when the table's columns match the
      query's (typed: the design's DDL; untyped: the query's result), which keeps grants,
      comments and the views that read the table; otherwise DROP and CREATE.
    - Views: left alone when the definition is unchanged, ``CREATE OR REPLACE VIEW`` when
      PostgreSQL accepts the new columns, DROP and CREATE otherwise.

    Views that read a dropped relation (PostgreSQL binds them by OID, so the DROP would
    fail) are dropped with it and recreated from their definitions, with their comments,
    grants and owner, as soon as what they read exists again. One that no longer binds
    when an atomic transaction is published fails it (nothing changes); a non-atomic one
    (upgrade, whose steps have committed) logs its definition as a warning. Grants a dropped
    relation had, and those of the environment's ``readers`` and ``writers``, are given to
    its replacement. Dropping a relation takes an ACCESS EXCLUSIVE lock until the commit, so
    its readers wait for the update; PostgreSQL may break a lock cycle with such a reader by
    failing one of the two (then the update rolls back and can be run again).

    Each schema the transaction touches is locked with the advisory lock loads take, so a
    load, update or upgrade of the same schema cannot run at the same time: a load that
    built ``s$staging`` would otherwise swap it in over the committed update. ``lock`` takes
    them all up front, in name order; a busy one is waited for, at most ``lock_timeout_s``
    seconds (``waiting`` is told what for), while a load never waits for one.
    """

    FREEZE = False  # tables are filled after DELETE, in a transaction that began earlier

    def __init__(
        self,
        warehouse: PostgresWarehouse,
        *,
        run_id: str,
        atomic: bool,
        lock_timeout_s: float = 0.0,
        waiting: Callable[[str], None] | None = None,
    ):
        self.warehouse = warehouse
        self.run_id = run_id
        self.atomic = atomic
        self.lock_timeout_s = lock_timeout_s
        self.waiting = waiting
        self.schemas = []
        self._finished = False
        self._claimed: set[str] = set()
        self._schemas_made: set[str] = set()
        self._pending: dict[str, DependentView] = {}
        """Views dropped with a relation they read, waiting to be recreated."""
        self._acl: dict[str, list[tuple[str, str, bool]]] = {}
        """Grants of dropped relations, for their replacements."""
        self.con = warehouse.connect()
        try:
            self._check_roles()
            if atomic:
                # one implicit transaction from here to publish/abort; psycopg's transaction
                # blocks inside it are savepoints
                self.con.autocommit = False
                self.con.execute("SELECT 1")
        except BaseException:
            self.abort()
            raise

    # ------------------------------------------------------------------ plumbing

    def staged(self, name: str) -> str:
        return name

    def _connection(self) -> psycopg.Connection[Any]:
        if self._finished or self.con.closed:
            raise WarehouseError("this transaction is already committed or rolled back.")
        return self.con

    def lock(self, names: Sequence[str]) -> None:
        for schema in sorted({name.partition(".")[0] for name in names}):
            self._claim(schema)

    def _claim(self, name: str) -> None:
        schema = name.partition(".")[0]
        if schema in self._claimed:
            return
        try:
            lock_schema(
                self._connection(), schema, self.warehouse.name, timeout_s=self.lock_timeout_s, waiting=self.waiting
            )
        except psycopg.Error as exc:
            raise WarehouseError(f'locking schema "{schema}" failed in PostgreSQL: {_message(exc)}') from None
        self._claimed.add(schema)

    @contextmanager
    def _transaction(self, design: TableDesign, doing: str = "building") -> Iterator[psycopg.Connection[Any]]:
        """A savepoint (atomic) or a transaction of its own; PostgreSQL errors become a LoadError."""
        self._claim(design.name)
        with super()._transaction(design, doing) as con:
            yield con

    def _kind(self, name: str) -> str | None:
        """ "table", "view" (or another relkind) or None: what ``name`` is now."""
        row = (
            self._connection()
            .execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (qualified(name),))
            .fetchone()
        )
        if not row:
            return None
        return "view" if row[0] == "v" else "table" if row[0] in ("r", "p") else str(row[0])

    def _shape_matches(self, design: TableDesign, probe: str, *, not_null: bool) -> bool:
        """Whether ``design.name`` has the columns (names, types, NOT NULL) of the table ``probe`` creates.

        ``probe`` creates ``pg_temp.conveyor_shape``; it is rolled back.
        """
        same = False
        with self._transaction(design, "comparing the columns of") as con:
            con.execute(probe)
            same = _shape(con, "pg_temp.conveyor_shape", not_null) == _shape(con, design.name, not_null)
            raise psycopg.Rollback()
        return same

    # ------------------------------------------------------------------ relations

    def ensure_schema(self, schema: str) -> None:
        self._claim(schema)
        con = self._connection()
        try:
            with con.transaction():
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
                for role in self.warehouse.readers:
                    con.execute(f"GRANT USAGE ON SCHEMA {quote(schema)} TO {quote(role)}")
                for role in self.warehouse.writers:
                    con.execute(f"GRANT USAGE, CREATE ON SCHEMA {quote(schema)} TO {quote(role)}")
        except psycopg.Error as exc:
            raise LoadError(f'creating schema "{schema}" failed in PostgreSQL: {_message(exc)}') from None

    def _schema_of(self, design: TableDesign) -> None:
        """Create the schema of a relation about to be created, once (an update of a new schema)."""
        schema = design.name.partition(".")[0]
        if schema not in self._schemas_made:
            self.ensure_schema(schema)
            self._schemas_made.add(schema)

    def load_table(self, design: TableDesign, manifest: Manifest) -> int:
        self._schema_of(design)
        rows = super().load_table(design, manifest)
        self._created(design)
        return rows

    def replace_rows(self, design: TableDesign, manifests: Sequence[Manifest]) -> int:
        _require_columns(design, manifests[0])
        typed = all(c.type for c in design.loaded_columns)
        probe = ddl.create_table(design, "postgres", name="pg_temp.conveyor_shape") if typed else ""
        if not (self._kind(design.name) == "table" and typed and self._shape_matches(design, probe, not_null=True)):
            self.drop(design.name)
            return self.load_chain(design, manifests)
        with self._transaction(design, "loading") as con:
            con.execute(f"DELETE FROM {qualified(design.name)}")
            rows = self._copy(con, design, manifests[0], design.name)
            for statement in ddl.comments(design):
                con.execute(statement)
        for manifest in manifests[1:]:
            rows += self.merge_table(design, manifest)
        return rows

    def create_table(self, design: TableDesign, sql: str) -> int:
        self._schema_of(design)
        rows = super().create_table(design, sql)
        self._created(design)
        return rows

    def refresh(self, design: TableDesign, sql: str) -> int:
        if self._kind(design.name) == "table":
            self._check_columns(design, sql)
            if bool(design.columns) and all(c.type for c in design.columns):
                probe, not_null = ddl.create_table(design, "postgres", name="pg_temp.conveyor_shape"), True
            else:
                probe, not_null = f"CREATE TEMPORARY TABLE conveyor_shape AS\n{sql}\nWITH NO DATA", False
            if self._shape_matches(design, probe, not_null=not_null):
                target = qualified(design.name)
                with self._transaction(design) as con:
                    con.execute(f"DELETE FROM {target}")
                    rows = con.execute(f"INSERT INTO {target}\n{sql}").rowcount
                    for statement in ddl.comments(design):
                        con.execute(statement)
                return max(rows, 0)
        self.drop(design.name)
        return self.create_table(design, sql)

    def create_view(self, design: TableDesign, sql: str) -> None:
        kind = self._kind(design.name)
        if kind == "view":
            self._check_columns(design, sql)
            if self._same_view(design, sql):
                with self._transaction(design) as con:
                    for statement in ddl.comments(design, view=True):
                        con.execute(statement)
                return
            try:
                with self._transaction(design) as con:
                    con.execute(f"CREATE OR REPLACE VIEW {qualified(design.name)} AS\n{sql}")
                    for statement in ddl.comments(design, view=True):
                        con.execute(statement)
            except LoadError:
                pass  # other columns than before: drop and create
            else:
                self._restore_views()
                return
        if kind is not None:
            self.drop(design.name)
        self._schema_of(design)
        super().create_view(design, sql)
        self._created(design)

    def _same_view(self, design: TableDesign, sql: str) -> bool:
        """Whether the published view already has this definition (then it is not replaced)."""
        same = False
        try:
            with self._transaction(design) as con:
                con.execute(f"CREATE TEMPORARY VIEW conveyor_probe AS\n{sql}")
                con.execute("SET LOCAL search_path = pg_catalog")  # both printed schema-qualified
                row = con.execute(
                    "SELECT pg_get_viewdef('pg_temp.conveyor_probe'::regclass) = pg_get_viewdef(%s::regclass)",
                    (qualified(design.name),),
                ).fetchone()
                same = bool(row and row[0])
                raise psycopg.Rollback()
        except LoadError:
            return False
        return same

    def drop(self, name: str) -> None:
        """Drop a relation, and the views that read it (recreated once it exists again)."""
        kind = self._kind(name)
        if kind is None:
            return
        if kind not in ("table", "view"):
            raise LoadError(f'"{name}" is a relation of kind "{kind}" in PostgreSQL; drop it yourself first.')
        self._claim(name)
        con = self._connection()
        try:
            with con.transaction() as probe:
                con.execute("SET LOCAL search_path = pg_catalog")  # view definitions schema-qualified
                views = views_reading(con, name)
                grants = _grants(con, name)
                raise psycopg.Rollback(probe)
            with con.transaction():
                if views:
                    con.execute("DROP VIEW " + ", ".join(qualified(f"{v.schema}.{v.name}") for v in views))
                con.execute(f"DROP {'VIEW' if kind == 'view' else 'TABLE'} {qualified(name)}")
        except psycopg.Error as exc:
            raise LoadError(f'dropping "{name}" failed in PostgreSQL: {_message(exc)}') from None
        for view in views:
            self._pending.setdefault(f"{view.schema}.{view.name}", view)
        self._acl[name] = grants

    def _created(self, design: TableDesign) -> None:
        """A relation was (re)created: give it its grants, then recreate the views waiting for it."""
        name = design.name
        pending = self._pending.pop(name, None)
        grants = self._acl.pop(name, []) + (pending.grants if pending else [])
        target = qualified(name)
        with self._transaction(design, "granting privileges on") as con:
            for privilege, grantee, grantable in grants:
                role = "PUBLIC" if grantee == "PUBLIC" else quote(grantee)
                con.execute(f"GRANT {privilege} ON {target} TO {role}" + (" WITH GRANT OPTION" if grantable else ""))
            for role in self.warehouse.readers:
                con.execute(f"GRANT SELECT ON {target} TO {quote(role)}")
            for role in self.warehouse.writers:
                con.execute(f"GRANT ALL ON {target} TO {quote(role)}")
        self._restore_views()

    def _restore_views(self) -> None:
        """Recreate every waiting view that binds now (each in a savepoint: one that fails waits on)."""
        con = self._connection()
        progress = True
        while self._pending and progress:
            progress = False
            for key, view in list(self._pending.items()):
                try:
                    with con.transaction():
                        view.recreate(con)
                except (WarehouseError, psycopg.Error):
                    continue
                del self._pending[key]
                progress = True

    # ------------------------------------------------------------------ commit / rollback

    def publish(self) -> None:
        if self._finished:
            raise WarehouseError("this transaction is already committed or rolled back.")
        try:
            self._restore_views()
            if self._pending and self.atomic:
                names = ", ".join(self._pending)
                raise WarehouseError(
                    f"view(s) {names} read relations that were replaced and no longer work with the new version.",
                    hint="Change or drop those views, then try again.",
                )
            for key, view in self._pending.items():
                # upgrade: what they read failed to build (or changed); each step has committed
                log.warning(
                    "view %s was dropped with a relation it reads and cannot be created again; it was: %s",
                    key,
                    view.definition,
                )
            if self.atomic:
                self.con.commit()
        except psycopg.Error as exc:
            self.abort()
            raise WarehouseError(
                f'committing to the PostgreSQL warehouse "{self.warehouse.name}" failed: {_message(exc)}'
            ) from None
        except BaseException:
            self.abort()
            raise
        self._finished = True
        self._release()

    def suspend(self) -> None:
        self.abort()

    def abort(self) -> None:
        con = getattr(self, "con", None)
        if con is not None and not con.closed and self.atomic:
            with suppress(psycopg.Error):
                con.rollback()
        self._finished = True
        self._release()


# ---------------------------------------------------------------------------- catalog helpers


def lock_schema(
    con: psycopg.Connection[Any],
    schema: str,
    warehouse: str,
    *,
    timeout_s: float = 0.0,
    waiting: Callable[[str], None] | None = None,
) -> None:
    """Take the session advisory lock of a schema (loads, updates and upgrades into it exclude each other).

    A busy lock is tried again for at most ``timeout_s`` seconds; ``waiting`` is told once.
    """
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        row = con.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, _lock_key(schema))).fetchone()
        if row and row[0]:
            return
        by = _lock_holder(con, schema)
        if time.monotonic() >= deadline:
            break
        if waiting is not None and not told:
            waiting(f'waiting for the load (or update) of schema "{schema}" to finish{by}')
            told = True
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    if timeout_s > 0:
        raise WarehouseError(
            f'a load (or an update or upgrade) of schema "{schema}" of the PostgreSQL warehouse "{warehouse}" '
            f"was still running{by} after {timeout_s:.0f} s of waiting for it; nothing was changed.",
            hint="Run the command again when it has finished, or wait longer with --lock-timeout.",
        )
    raise WarehouseError(
        f'another load into schema "{schema}" of the PostgreSQL warehouse "{warehouse}" '
        f"(or an update or upgrade of it) is running{by}.",
        hint="Wait for it to finish, then try again.",
    )


def _lock_holder(con: psycopg.Connection[Any], schema: str) -> str:
    """Who holds a schema's advisory lock, as " (backend pid ..., application, since ...)"."""
    holder = con.execute(
        "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.classid = %s AND l.objid = %s AND l.granted",
        (LOCK_CLASS, _lock_key(schema) & 0xFFFFFFFF),
    ).fetchone()
    if not holder:
        return ""
    return f" (backend pid {holder[0]}, {holder[1] or 'no name'}, since {holder[2]:%Y-%m-%d %H:%M:%S})"


def set_search_path(con: psycopg.Connection[Any], schemas: Sequence[str]) -> str | None:
    """Search ``schemas`` first, then the session's own path, until the transaction ends.

    Returns the path it replaced (None when ``schemas`` is empty and nothing changed). A
    transaction that goes on after a savepoint (an atomic update) sets it back with it.
    """
    if not schemas:
        return None
    row = con.execute("SELECT current_setting('search_path')").fetchone()
    previous = str(row[0]) if row else ""
    path = ", ".join([*(quote(s) for s in schemas), *([previous] if previous.strip() else [])])
    con.execute("SELECT set_config('search_path', %s, true)", (path,))
    return previous


def _require_columns(design: TableDesign, manifest: Manifest) -> None:
    present = set(manifest.arrow_schema.names)
    missing = [c.name for c in design.loaded_columns if c.name not in present]
    if missing:
        raise LoadError(
            f'the extract {manifest.extract_id} of "{design.name}" lacks column(s) {", ".join(missing)}.',
            hint=f'Re-extract it: "conveyor extract {design.name} --full".',
        )


def table_columns(con: psycopg.Connection[Any], table: str) -> list[PgColumn]:
    """The columns of ``table`` ("schema.table") with their catalog types, in order."""
    rows = con.execute(
        """
        SELECT a.attname, t.typname, a.atttypmod, e.typname, t.typelem::int
        FROM pg_attribute a
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (qualified(table),),
    ).fetchall()
    return [PgColumn(name, typ, mod, elem, elem_oid if elem else 0) for name, typ, mod, elem, elem_oid in rows]


def _published(con: psycopg.Connection[Any], schemas: list[str]) -> tuple[list[str], list[str]]:
    """(tables, views) of ``schemas`` as "schema.name", in creation order: what readers lock."""
    if not schemas:
        return [], []
    rows = con.execute(
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v') ORDER BY c.oid",
        (schemas,),
    ).fetchall()
    tables = [f"{schema}.{name}" for schema, name, kind in rows if kind != "v"]
    views = [f"{schema}.{name}" for schema, name, kind in rows if kind == "v"]
    return tables, views


class _Blocked(Exception):
    """A publish attempt found a relation locked by someone else."""

    def __init__(self, relation: str, cause: psycopg.Error, *, view: bool):
        super().__init__(relation)
        self.relation, self.cause, self.view = relation, cause, view


class DependentView:
    """A view outside the rebuilt schemas that reads one of their relations: recreated on publish."""

    def __init__(self, schema: str, name: str, definition: str, options: list[str] | None, owner: str):
        self.schema, self.name, self.definition, self.options, self.owner = schema, name, definition, options, owner
        self.comment: str | None = None
        self.column_comments: list[tuple[str, str]] = []
        self.grants: list[tuple[str, str, bool]] = []

    def recreate(self, con: psycopg.Connection[Any]) -> None:
        target = qualified(f"{self.schema}.{self.name}")
        with_options = f" WITH ({', '.join(self.options)})" if self.options else ""
        try:
            con.execute(f"CREATE VIEW {target}{with_options} AS {self.definition.rstrip().rstrip(';')}")
        except psycopg.Error as exc:
            raise WarehouseError(
                f'the view "{self.schema}.{self.name}" reads a rebuilt relation and no longer works with the '
                f"new version: {_message(exc)}",
                hint="Change or drop that view, then load again.",
            ) from None
        if self.comment is not None:
            con.execute(f"COMMENT ON VIEW {target} IS {literal(self.comment)}")
        for column, comment in self.column_comments:
            con.execute(f"COMMENT ON COLUMN {target}.{quote(column)} IS {literal(comment)}")
        for privilege, grantee, grantable in self.grants:
            role = "PUBLIC" if grantee == "PUBLIC" else quote(grantee)
            con.execute(f"GRANT {privilege} ON {target} TO {role}" + (" WITH GRANT OPTION" if grantable else ""))
        current = con.execute("SELECT current_user").fetchone()
        if current and self.owner != current[0]:
            con.execute(f"ALTER VIEW {target} OWNER TO {quote(self.owner)}")


def dependent_views(con: psycopg.Connection[Any], schemas: list[str]) -> list[DependentView]:
    """Views outside ``schemas`` that read their relations, directly or through other such views.

    Returned in an order they can be created in. Materialized views and foreign keys that
    reference a rebuilt table are refused: they cannot be recreated safely.
    """
    if not schemas:
        return []
    outside = (
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%(all)s)"
    )
    params = {
        "schemas": schemas,
        "all": [*schemas, *(s + STAGING for s in schemas), *(s + BACKUP for s in schemas)],
    }
    rows = con.execute(
        f"""
        WITH RECURSIVE rebuilt AS (
            SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = ANY(%(schemas)s)
        ), reader(oid, depth) AS (
            SELECT DISTINCT r.ev_class, 1
            FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
            WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.refobjid IN (SELECT oid FROM rebuilt) AND r.ev_class NOT IN ({outside})
            UNION
            SELECT r.ev_class, reader.depth + 1
            FROM reader
            JOIN pg_depend d ON d.refobjid = reader.oid AND d.refclassid = 'pg_class'::regclass
                            AND d.classid = 'pg_rewrite'::regclass
            JOIN pg_rewrite r ON r.oid = d.objid
            WHERE r.ev_class <> reader.oid AND r.ev_class NOT IN ({outside})
        )
        SELECT c.oid, n.nspname, c.relname, c.relkind, pg_get_viewdef(c.oid), c.reloptions,
               pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class'), max(reader.depth) AS depth
        FROM reader JOIN pg_class c ON c.oid = reader.oid JOIN pg_namespace n ON n.oid = c.relnamespace
        GROUP BY c.oid, n.nspname, c.relname, c.relkind, c.reloptions, c.relowner
        ORDER BY depth, c.oid
        """,
        params,
    ).fetchall()
    for _oid, schema, name, kind, *_ in rows:
        if kind != "v":
            raise WarehouseError(
                f'the materialized view "{schema}.{name}" reads a relation of a schema this load replaces '
                f"({', '.join(schemas)}); it would keep reading the old version.",
                hint="Make it a view or a Conveyor relation, or drop it, then load again.",
            )
    foreign = con.execute(
        """
        SELECT conrelid::regclass::text, conname, confrelid::regclass::text
        FROM pg_constraint c
        WHERE c.contype = 'f'
          AND c.confrelid IN (SELECT c2.oid FROM pg_class c2 JOIN pg_namespace n ON n.oid = c2.relnamespace
                              WHERE n.nspname = ANY(%(schemas)s))
          AND c.conrelid NOT IN (SELECT c3.oid FROM pg_class c3 JOIN pg_namespace n ON n.oid = c3.relnamespace
                                 WHERE n.nspname = ANY(%(schemas)s))
        """,
        {"schemas": schemas},
    ).fetchone()
    if foreign:
        raise WarehouseError(
            f"the foreign key {foreign[1]} of table {foreign[0]} references {foreign[2]}, which this load replaces; "
            "it would keep referencing the old version.",
            hint="Drop the foreign key (Conveyor checks keys itself), then load again.",
        )
    return _describe_views(con, [row[:8] for row in rows])


def _describe_views(con: psycopg.Connection[Any], rows: Sequence[Sequence[Any]]) -> list[DependentView]:
    """DependentViews from rows of (oid, schema, name, kind, definition, options, owner, comment)."""
    views = []
    for oid, schema, name, _kind, definition, options, owner, comment in rows:
        view = DependentView(schema, name, definition, options, owner)
        view.comment = comment
        view.column_comments = [
            (column, text)
            for column, text in con.execute(
                "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
                "WHERE attrelid = %s AND attnum > 0 AND col_description(attrelid, attnum) IS NOT NULL "
                "ORDER BY attnum",
                (oid,),
            )
        ]
        view.grants = [
            (privilege, grantee, grantable)
            for privilege, grantee, grantable in con.execute(
                "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, "
                "a.is_grantable FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = %s AND a.grantee <> c.relowner",
                (oid,),
            )
        ]
        views.append(view)
    return views


def _shape(con: psycopg.Connection[Any], table: str, not_null: bool) -> list[tuple[Any, ...]]:
    """(name, type[, NOT NULL]) of every column of ``table``, in order."""
    rows = con.execute(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (qualified(table),),
    ).fetchall()
    return [tuple(row) if not_null else tuple(row[:2]) for row in rows]


def _grants(con: psycopg.Connection[Any], name: str) -> list[tuple[str, str, bool]]:
    """(privilege, grantee or PUBLIC, grantable) a relation has, besides its owner's."""
    return [
        (privilege, grantee, grantable)
        for privilege, grantee, grantable in con.execute(
            "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, "
            "a.is_grantable FROM pg_class c, aclexplode(c.relacl) a "
            "WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner",
            (qualified(name),),
        )
    ]


def views_reading(con: psycopg.Connection[Any], name: str) -> list[DependentView]:
    """Views that read relation ``name``, directly or through each other, in an order they can be created in.

    Materialized views among them are refused: they cannot be recreated safely.
    """
    rows = con.execute(
        """
        WITH RECURSIVE reader(oid, depth) AS (
            SELECT DISTINCT r.ev_class, 1
            FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
            WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.refobjid = to_regclass(%(name)s) AND r.ev_class <> d.refobjid
            UNION
            SELECT r.ev_class, reader.depth + 1
            FROM reader
            JOIN pg_depend d ON d.refobjid = reader.oid AND d.refclassid = 'pg_class'::regclass
                            AND d.classid = 'pg_rewrite'::regclass
            JOIN pg_rewrite r ON r.oid = d.objid
            WHERE r.ev_class <> reader.oid
        )
        SELECT c.oid, n.nspname, c.relname, c.relkind, pg_get_viewdef(c.oid), c.reloptions,
               pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class'), max(reader.depth) AS depth
        FROM reader JOIN pg_class c ON c.oid = reader.oid JOIN pg_namespace n ON n.oid = c.relnamespace
        GROUP BY c.oid, n.nspname, c.relname, c.relkind, c.reloptions, c.relowner
        ORDER BY depth, c.oid
        """,
        {"name": qualified(name)},
    ).fetchall()
    for _oid, schema, view, kind, *_ in rows:
        if kind != "v":
            raise LoadError(
                f'the materialized view "{schema}.{view}" reads "{name}", which must be dropped and created again.',
                hint="Make it a view or a Conveyor relation, or drop it, then try again.",
            )
    return _describe_views(con, [row[:8] for row in rows])


# ---------------------------------------------------------------------------- loading


def copy_parquet(
    con: psycopg.Connection[Any],
    table: str,
    encoder: CopyEncoder,
    paths: Sequence[Path],
    schema: pa.Schema,
    *,
    freeze: bool = True,
) -> int:
    """COPY the Parquet files into ``table``; returns rows.

    With ``freeze`` the table must have been created or truncated in the current
    (sub)transaction: its rows are written frozen, which saves vacuuming them later.

    A thread reads and encodes batches while this one sends them, through a queue of
    :data:`QUEUE_DEPTH` chunks, so memory stays bounded whatever the size of the data.
    """
    columns = ", ".join(quote(c) for c in encoder.copy_columns)
    options = "FORMAT binary, FREEZE" if freeze else "FORMAT binary"
    statement = f"COPY {qualified(table)} ({columns}) FROM STDIN ({options})"
    with _Encoded(paths, encoder, schema) as chunks, con.cursor() as cursor:
        with cursor.copy(statement) as copy:
            copy.write(SIGNATURE)
            for chunk in chunks:
                copy.write(chunk)
                crash_point("pg.copy.batch")
            copy.write(TRAILER)
        return max(cursor.rowcount, 0)


_END = object()


class _Encoded:
    """Encoded COPY chunks of Parquet files, produced by a background thread."""

    def __init__(self, paths: Sequence[Path], encoder: CopyEncoder, schema: pa.Schema):
        self.paths, self.encoder, self.schema = list(paths), encoder, schema
        self.names = encoder.copy_columns
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._produce, name="conveyor-pgcopy", daemon=True)

    def __enter__(self) -> Iterator[pa.Buffer]:
        self.thread.start()
        return self._chunks()

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        while self.thread.is_alive():
            with suppress(queue.Empty):
                self.queue.get(timeout=0.05)
        self.thread.join()

    def _chunks(self) -> Iterator[pa.Buffer]:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for path in self.paths:
                with pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20) as parquet:
                    rows = batch_rows(parquet.metadata)
                    for batch in parquet.iter_batches(batch_size=rows, columns=self.names, use_threads=True):
                        for chunk in self.encoder.encode(_conform(batch, self.schema)):
                            if not self._put(chunk):
                                return
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)
        else:
            self._put(_END)


def batch_rows(metadata: pq.FileMetaData) -> int:
    """Rows per batch so a batch holds about :data:`BATCH_BYTES` of uncompressed data."""
    if metadata.num_rows == 0 or metadata.num_row_groups == 0:
        return 65_536
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    per_row = max(1.0, size / metadata.num_rows)
    return int(min(131_072, max(1_024, BATCH_BYTES // per_row)))


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast columns whose type differs from the manifest's schema (a part written differently)."""
    changed = False
    arrays = []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        index = schema.get_field_index(field.name)
        expected = schema.field(index).type if index >= 0 else field.type
        if array.type != expected:
            array = array.cast(expected)  # safe cast: lossy conversions are errors
            changed = True
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names) if changed else batch
