"""A load on PostgreSQL: build into ``<schema>$staging``, publish by renaming schemas.

A build creates one staging schema per rebuilt schema, loads and builds every relation
there (several threads, one connection each), checks keys, and publishes in one
transaction that renames ``<schema>`` to ``<schema>$backup`` and ``<schema>$staging`` to
``<schema>``. Readers never see a mix: the publishing transaction first takes ACCESS
EXCLUSIVE locks on every published relation of the rebuilt schemas, so a query that
starts while it runs waits, and once it commits, looks its names up again and finds the
new relations. Views in other schemas that read a rebuilt relation are bound to it by
OID and would follow it into ``$backup``, so they are recreated from their definitions in
the same transaction. See docs/warehouses.md.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import psycopg.errors
import pyarrow as pa

from conveyor import cancel
from conveyor.design.models import TableDesign
from conveyor.errors import LoadError, WarehouseError
from conveyor.faults import crash_point
from conveyor.graph.splice import limit_zero
from conveyor.lake.manifest import Manifest
from conveyor.warehouse import ddl
from conveyor.warehouse.base import (
    Build,
    KeyViolation,
    QueryResult,
    key_constraints,
    literal,
    output_select,
    qualified,
    quote,
    unchecked_not_null,
)
from conveyor.warehouse.postgres.binary import CopyEncoder
from conveyor.warehouse.postgres.binary_layout import EncodeError
from conveyor.warehouse.postgres.catalog import (
    BACKUP,
    MAX_IDENTIFIER,
    STAGING,
    dependent_views,
    name_session,
    set_search_path,
    table_columns,
)
from conveyor.warehouse.postgres.connect import Server, error_message, log
from conveyor.warehouse.postgres.copy import copy_parquet

LOCK_CLASS = 0x436F6E76  # "Conv": first key of the advisory locks of loads (second: the schema)
PUBLISH_LOCK_TIMEOUT_MS = 500
"""How long one publish attempt waits for a relation a reader holds (readers queued behind it
wait as long), before it lets go and tries again."""
PUBLISH_PATIENCE_S = 120.0
"""How long publishing keeps trying before it reports the queries that hold the relations."""
BUILD_MARK = "conveyor build "


def _lock_key(schema: str) -> int:
    """The second advisory lock key of a schema: a stable signed 32-bit hash of its name."""
    value = zlib.crc32(schema.encode())
    return value - 2**32 if value >= 2**31 else value


class PostgresBuild(Build):
    """One build: staging schemas, a lock connection that publishes, and a connection per thread."""

    FREEZE = True
    """COPY with FREEZE: every table is created in the transaction that fills it."""

    def __init__(self, warehouse: Server, schemas: list[str], run_id: str, resume_from: str | None = None):
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
            name_session(self.con, f"load run {run_id}")
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
                self.con.execute(f"COMMENT ON SCHEMA {staging} IS {literal(BUILD_MARK + self.build_id)}")

    def _check_resumable(self, run_id: str) -> None:
        rows = self.con.execute(
            "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = ANY(%s)",
            ([s + STAGING for s in self.schemas],),
        ).fetchall()
        marks = dict(rows)
        if any(marks.get(s + STAGING) != BUILD_MARK + run_id for s in self.schemas):
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
            cancel.check()
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
            raise LoadError(f'{doing} "{design.name}" failed in PostgreSQL: {error_message(exc)}') from None

    # ------------------------------------------------------------------ relations

    def load_table(self, design: TableDesign, manifest: Manifest, *, analyze: bool = True) -> int:
        """Create a source table, COPY an extract into it and (unless told not to) analyse it."""
        require_columns(design, manifest)
        target = self.staged(design.name)
        with self._transaction(design, "loading") as con:
            con.execute(ddl.create_table(design, "postgres", name=target))
            rows = self._copy(con, design, manifest, target)
            for statement in ddl.comments(design, name=target):
                con.execute(statement)
            if analyze:
                analyze_table(con, target)
        return rows

    def load_chain(self, design: TableDesign, manifests: Sequence[Manifest]) -> int:
        """Load a full extract and merge the increments after it; the table is analysed once, at the end."""
        last = len(manifests) - 1
        rows = self.load_table(design, manifests[0], analyze=last == 0)
        for index, manifest in enumerate(manifests[1:], 1):
            rows += self.merge_table(design, manifest, analyze=index == last)
        return rows

    def merge_table(self, design: TableDesign, manifest: Manifest, *, analyze: bool = True) -> int:
        """COPY an incremental extract into a temporary table, then replace rows by primary key (and analyse)."""
        target = qualified(self.staged(design.name))
        require_columns(design, manifest)
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
            if analyze:
                analyze_table(con, self.staged(design.name))
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
            filesystem, paths = manifest.arrow_files()
            return copy_parquet(
                con,
                table,
                encoder,
                paths,
                manifest.arrow_schema,
                freeze=self.FREEZE if freeze is None else freeze,
                filesystem=filesystem,
            )
        except EncodeError as exc:
            raise LoadError(f'loading "{design.name}" from extract {manifest.extract_id} failed: {exc}.') from None
        except (OSError, pa.ArrowException) as exc:
            raise LoadError(
                f'reading extract {manifest.extract_id} of "{design.name}" at {manifest.location} failed: {exc}.',
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
            raise LoadError(f'dropping the unfinished "{name}" failed in PostgreSQL: {error_message(exc)}') from None

    def fetch(self, sql: str, limit: int) -> QueryResult:
        con = self._connection()
        try:
            with con.transaction():
                cursor = con.execute(sql)
                columns = [column.name for column in cursor.description or []]
                rows = cursor.fetchmany(limit + 1) if columns else []
        except psycopg.Error as exc:
            raise LoadError(f"PostgreSQL: {error_message(exc)}") from None
        return QueryResult(columns, rows[:limit], len(rows) > limit)

    def output_columns(self, design: TableDesign, sql: str) -> list[str]:
        """Names of the columns a query produces, without reading any row."""
        with self._transaction(design) as con:
            cursor = con.execute(limit_zero(sql, "postgres"))
            return [column.name for column in cursor.description or []]

    def _checked(self, design: TableDesign, sql: str) -> str:
        """The query to build ``design`` from, its columns checked against the design (see ``output_select``)."""
        if not design.columns:
            return sql
        return output_select(design, sql, self.output_columns(design, sql), "postgres")

    def create_table(self, design: TableDesign, sql: str) -> int:
        sql = self._checked(design, sql)
        target = qualified(self.staged(design.name))
        typed = design.typed
        with self._transaction(design) as con:
            if typed:
                con.execute(ddl.create_table(design, "postgres", name=self.staged(design.name)))
                rows = con.execute(f"INSERT INTO {target} {sql}").rowcount
            else:
                rows = con.execute(f"CREATE TABLE {target} AS {sql}").rowcount
            for statement in ddl.comments(design, name=self.staged(design.name)):
                con.execute(statement)
            analyze_table(con, self.staged(design.name))
        return max(rows, 0)

    def create_view(self, design: TableDesign, sql: str) -> None:
        sql = self._checked(design, sql)
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
                f'publishing to the PostgreSQL warehouse "{self.warehouse.name}" failed: {error_message(exc)}'
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
            log.debug("publish attempt %d could not lock every relation: %s", attempt, error_message(cause))
            if time.monotonic() > deadline:
                raise WarehouseError(
                    f'publishing to the PostgreSQL warehouse "{self.warehouse.name}" gave up after {attempt} '
                    f"attempts in {PUBLISH_PATIENCE_S:.0f} s to lock the relations it replaces: {error_message(cause)}",
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
                log.warning("could not drop staging schemas: %s", error_message(exc))
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


def analyze_table(con: psycopg.Connection[Any], table: str) -> None:
    """Gather the planner's statistics of a table just filled, in the transaction that filled it.

    A build reads each table in the next relation's query as soon as it is committed, long
    before autovacuum would analyse it: without statistics PostgreSQL plans that query for
    a guessed size and distribution (TPC-H query 19 at SF 0.1 took 62.8 s instead of 0.38 s).
    Every load, merge and CTAS therefore ends with ``ANALYZE``, so the relations that read
    the table are planned with its statistics. It samples at most 300 x
    ``default_statistics_target`` rows (30,000 by default), so it costs little even on a
    large table.
    """
    con.execute(f"ANALYZE {qualified(table)}")


def require_columns(design: TableDesign, manifest: Manifest) -> None:
    present = set(manifest.arrow_schema.names)
    missing = [c.name for c in design.loaded_columns if c.name not in present]
    if missing:
        raise LoadError(
            f'the extract {manifest.extract_id} of "{design.name}" lacks column(s) {", ".join(missing)}.',
            hint=f'Re-extract it: "conveyor extract {design.name} --full".',
        )


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
