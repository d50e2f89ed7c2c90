"""DuckDB, the embedded warehouse: build into a new file, publish by atomic rename.

DuckDB cannot rename schemas, and a process that writes a DuckDB file holds an exclusive
lock on it for as long as the connection is open, so building "in place" would both mix
old and new relations and lock every reader out for the whole load. Instead a build
writes a private file beside the warehouse, copies in the schemas it does not rebuild,
checkpoints it, and publishes with ``os.replace``: one atomic rename. A reader that opens
the warehouse gets the old file or the new one, never a mix, and is never locked out.
The previous file stays as ``<file>.previous`` (a hard link, so it costs no copy).
See docs/architecture.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import tenacity

from conveyor.config.settings import EnvironmentConfig
from conveyor.design.models import TableDesign
from conveyor.errors import WarehouseError
from conveyor.faults import crash_point
from conveyor.lake.manifest import Manifest, fsync_dir
from conveyor.warehouse import duckdb_lock
from conveyor.warehouse.base import Transaction, Warehouse, literal, qualified, quote
from conveyor.warehouse.duckdb_sql import DuckDBRelations, select_extract

_INTERNAL_SCHEMAS = ("information_schema", "pg_catalog")


def staging_path(target: Path, run_id: str) -> Path:
    """The private file a run builds into, beside the warehouse.

    DuckDB names the catalog after the file name up to its first dot; this one never equals
    a schema name, which would make "schema.table" ambiguous while building.
    """
    return target.with_name(f".conveyor_build_{run_id}.{target.name}.building")


def _checkpoint_published(target: Path) -> None:
    """Fold a WAL left beside the published file into it before the file is replaced.

    DuckDB replays ``<file>.wal`` when it opens ``<file>``; a WAL of the old file must never
    be replayed onto the new one.
    """
    wal = Path(f"{target}.wal")
    if not wal.exists():
        return
    try:
        with duckdb.connect(str(target)) as con:
            con.execute("CHECKPOINT")
    except duckdb.Error as exc:
        raise WarehouseError(
            f"{wal} holds changes not yet written into {target.name}, and checkpointing it failed: {exc}",
            hint="Close programs that have the warehouse open for writing, then load again.",
        ) from None
    if wal.exists():
        raise WarehouseError(f"{wal} is still there after a checkpoint.", hint="Close programs using the warehouse.")


@tenacity.retry(
    retry=tenacity.retry_if_exception(lambda exc: "file handle conflict" in str(exc)),
    wait=tenacity.wait_random(0.01, 0.05),
    stop=tenacity.stop_after_delay(5),
    reraise=True,
)
def connect_shared(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Connect to a database file another thread of this process may be opening at the same moment.

    DuckDB shares one open database per file within a process; two threads connecting at
    once can collide ("Unique file handle conflict"), which passes when retried.
    """
    return duckdb.connect(str(path), read_only=read_only)


def duckdb_path(dsn: str, root: Path | None = None) -> Path:
    """The file of a DuckDB DSN (``path``, ``duckdb:///path``), relative to ``root``."""
    path = Path(dsn.removeprefix("duckdb:///").removeprefix("duckdb://"))
    return path if path.is_absolute() or root is None else root / path


class DuckDBWarehouse(Warehouse):
    """A DuckDB database file."""

    ENGINE = "duckdb"
    DIALECT = "duckdb"
    SUPPORTS_SCHEMA_RENAME = False
    SUPPORTS_TRANSACTIONAL_DDL = True
    PUBLISH = "file_swap"
    ENFORCES_KEYS_ON_LOAD = False
    MAX_DECIMAL_PRECISION = 38

    def __init__(self, name: str, dsn: str, *, root: Path | None = None, config: EnvironmentConfig | None = None):
        super().__init__(name, dsn)
        self.path = duckdb_path(dsn, root)
        self.keep_backup = config.keep_backup if config else True

    def describe(self) -> str:
        return f"DuckDB file {self.path}"

    def kept_build(self, run_id: str) -> bool:
        return staging_path(self.path, run_id).exists()

    def transaction(
        self,
        *,
        run_id: str,
        atomic: bool = True,
        lock_timeout_s: float = 0.0,
        waiting: Callable[[str], None] | None = None,
    ) -> DuckDBTransaction:
        return DuckDBTransaction(self, run_id=run_id, atomic=atomic, lock_timeout_s=lock_timeout_s, waiting=waiting)

    def begin(
        self, schemas: Sequence[str], *, run_id: str, keep_schemas: bool = True, resume_from: str | None = None
    ) -> DuckDBBuild:
        return DuckDBBuild(self.path, list(schemas), run_id, keep_schemas, self.keep_backup, resume_from)

    def connect(self, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """Open the published file (read-only by default)."""
        return connect_shared(self.path, read_only=read_only)

    def relations(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        with self.connect() as con:
            return _relations(con, "")

    @contextmanager
    def read_relation(self, name: str, batch_rows: int = 65_536) -> Iterator[pa.RecordBatchReader]:
        """Stream a published relation; uuid and json keep their Arrow extension types, instants are UTC."""
        if name not in self.relations():
            raise WarehouseError(f'"{name}" is not published in {self.describe()}.', hint='Run "conveyor load" first.')
        with self.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET arrow_lossless_conversion = true")
            yield con.sql(f"SELECT * FROM {qualified(name)}").to_arrow_reader(batch_rows)


FileIdentity = tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]


def file_identity(target: Path) -> FileIdentity:
    """(inode, size, mtime in ns) of the warehouse file and of its WAL (None when missing).

    Any write to the file, in place or by a rename over it, changes one of them.
    """

    def stat(path: Path) -> tuple[int, int, int] | None:
        try:
            found = path.stat()
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_size, found.st_mtime_ns

    return stat(target), stat(Path(f"{target}.wal"))


def _relations(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, str]:
    filter_db = f"database_name = {literal(database)} AND " if database else ""
    found: dict[str, str] = {}
    for schema, name in con.execute(
        f"SELECT schema_name, table_name FROM duckdb_tables() WHERE {filter_db}NOT internal"
    ).fetchall():
        found[f"{schema}.{name}"] = "table"
    for schema, name in con.execute(
        f"SELECT schema_name, view_name FROM duckdb_views() WHERE {filter_db}NOT internal"
    ).fetchall():
        if schema not in _INTERNAL_SCHEMAS:
            found[f"{schema}.{name}"] = "view"
    return found


class DuckDBBuild(DuckDBRelations):
    """One build: a private DuckDB file, published by renaming it over the warehouse."""

    def __init__(
        self,
        target: Path,
        schemas: list[str],
        run_id: str,
        keep_schemas: bool,
        keep_backup: bool = True,
        resume_from: str | None = None,
    ):
        self.target = target
        self.keep_backup = keep_backup
        self.schemas = schemas
        self.staging = staging_path(target, resume_from or run_id)
        self._init_cursors()
        self._kept_views: list[tuple[str, str, str, str | None]] = []
        """Views of the schemas this build keeps: (schema, name, CREATE VIEW, comment), in creation order."""
        self._waiting_views: list[tuple[str, str, str, str | None]] = []
        """Kept views not created yet: they read a relation this build has not made."""
        self._views_lock = threading.Lock()
        self._kept_column_comments: list[tuple[str, str, str, str]] = []
        self._lock_file = duckdb_lock.take(target, duckdb_lock.holder_text("load", run_id))
        self._base = file_identity(target)
        """The published file this build started from: publishing over any other version would lose it."""
        try:
            if resume_from and not self.staging.exists():
                raise WarehouseError(
                    f"the build of run {resume_from} is no longer there to resume (another load replaced it).",
                    hint="Run the load again without --resume.",
                )
            self._remove_leftovers(resuming=resume_from is not None)
            self.con = duckdb.connect(str(self.staging))
            for schema in schemas:
                self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            if keep_schemas and target.exists():
                self._copy_kept_schemas(copy_tables=resume_from is None)
        except BaseException:
            self.abort()
            raise

    def _remove_leftovers(self, *, resuming: bool) -> None:
        # builds that crashed before publishing; the lock proves none is still running. A new
        # (not resumed) build also drops a kept build of its own run id: a pipeline retries a
        # failed load under the same run id, and must not reopen the failed attempt's file
        for leftover in self.target.parent.glob(f".conveyor_build_*.{self.target.name}.building*"):
            if not resuming or leftover.name not in (self.staging.name, f"{self.staging.name}.wal"):
                leftover.unlink(missing_ok=True)

    def _copy_kept_schemas(self, *, copy_tables: bool = True) -> None:
        """Carry over every schema this build does not replace, with DDL, data and comments.

        Views follow the tables, so that the build can read them (dbt's layout: a load of
        the mart tables reads the staging views). A view that reads a relation this build
        has not made yet waits, and is created as soon as it binds; at publish every kept
        view is created again, over the relations as they are then. A resumed build has its
        tables already.
        """
        try:
            self.con.execute(f"ATTACH {literal(str(self.target))} AS previous (READ_ONLY)")
        except duckdb.Error as exc:
            raise WarehouseError(
                f"cannot read the published warehouse {self.target} to keep its other schemas: {exc}",
                hint="Close programs that hold it open for writing, or load every schema.",
            ) from None
        rebuilt = set(self.schemas)
        tables = self.con.execute(
            "SELECT schema_name, table_name, sql, comment FROM duckdb_tables() "
            "WHERE database_name = 'previous' AND NOT internal"
        ).fetchall()
        views = self.con.execute(
            "SELECT schema_name, view_name, sql, comment FROM duckdb_views() "
            "WHERE database_name = 'previous' AND NOT internal ORDER BY view_oid"
        ).fetchall()
        for schema, *_ in [*tables, *views] if copy_tables else []:
            if schema not in rebuilt:
                self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        for schema, name, create_sql, comment in tables if copy_tables else []:
            if schema not in rebuilt:
                self.con.execute(create_sql)
                target = f"{quote(schema)}.{quote(name)}"
                self.con.execute(f"INSERT INTO {target} SELECT * FROM previous.{target}")
                if comment:
                    self.con.execute(f"COMMENT ON TABLE {target} IS {literal(comment)}")
        self._kept_views = [(s, v, sql, comment) for s, v, sql, comment in views if s not in rebuilt]
        self._kept_column_comments = [
            row
            for row in self.con.execute(
                "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
                "WHERE database_name = 'previous' AND NOT internal AND comment IS NOT NULL"
            ).fetchall()
            if row[0] not in rebuilt
        ]
        self.con.execute("DETACH previous")
        self._waiting_views = list(self._kept_views)
        self._create_waiting_views()

    def _create_waiting_views(self, built: str | None = None) -> None:
        """Create the waiting kept views that bind now, and then those that read the ones made.

        ``built`` is the table name of a relation just made: only views whose text names it
        can bind because of it. None tries every waiting view.
        """
        with self._views_lock:
            cursor = self.con.cursor()
            try:
                names = None if built is None else {built.lower()}
                while self._waiting_views and (names is None or names):
                    made: set[str] = set()
                    for view in list(self._waiting_views):
                        if names is not None and not any(n in view[2].lower() for n in names):
                            continue
                        try:
                            self._create_kept_view(cursor, *view)
                        except duckdb.Error:
                            continue  # it reads something not built yet
                        self._waiting_views.remove(view)
                        made.add(view[1].lower())
                    names = made
            finally:
                cursor.close()

    @staticmethod
    def _create_kept_view(
        cursor: duckdb.DuckDBPyConnection, schema: str, name: str, create_sql: str, comment: str | None
    ) -> None:
        target = f"{quote(schema)}.{quote(name)}"
        cursor.execute(f"DROP VIEW IF EXISTS {target}")
        cursor.execute(create_sql)
        if comment:
            cursor.execute(f"COMMENT ON VIEW {target} IS {literal(comment)}")

    def load_table(self, design: TableDesign, manifest: Manifest) -> int:
        rows = super().load_table(design, manifest)
        self._built(design)
        return rows

    def create_table(self, design: TableDesign, sql: str) -> int:
        rows = super().create_table(design, sql)
        self._built(design)
        return rows

    def create_view(self, design: TableDesign, sql: str) -> None:
        super().create_view(design, sql)
        self._built(design)

    def _built(self, design: TableDesign) -> None:
        """A relation exists now: kept views waiting for it may bind."""
        if self._waiting_views:
            self._create_waiting_views(design.table_name)

    def publish(self) -> None:
        try:
            self._restore_kept_views()
            self._close_cursors()
            try:
                self.con.execute("CHECKPOINT")
            except duckdb.Error as exc:
                raise WarehouseError(f"cannot checkpoint the new warehouse file: {exc}") from None
            self.con.close()
            _fsync(self.staging)
            self._refuse_if_changed()
            _checkpoint_published(self.target)
            backup = self.target.with_name(self.target.name + ".previous")
            backup.unlink(missing_ok=True)
            if self.target.exists() and self.keep_backup:
                os.link(self.target, backup)
            crash_point("duckdb.publish.before_rename")
            os.replace(self.staging, self.target)
            fsync_dir(self.target.parent)
            crash_point("duckdb.publish.after_rename")
        except BaseException:
            self.abort()
            raise
        self._release()

    def _refuse_if_changed(self) -> None:
        """Refuse to publish over a warehouse file that changed since this build began.

        Updates wait for the lock a build holds, so only a program that ignores it (a DuckDB
        client writing to the file) can get here. Its changes would be lost by the rename,
        and a resumed build would lose them too, so the build is discarded.
        """
        if file_identity(self.target) != self._base:
            raise WarehouseError(
                f"{self.target} changed while this load was building (another program wrote to it), so "
                "publishing would throw those changes away; nothing was published and the build was discarded.",
                hint="Stop programs that write to the warehouse file, then run the load again.",
            )

    def suspend(self) -> None:
        """Keep the unpublished file for ``conveyor load --resume``; the warehouse is untouched."""
        try:
            self._close_cursors()
            self.con.execute("CHECKPOINT")
            self.con.close()
        finally:
            self._release()

    def _restore_kept_views(self) -> None:
        """Create every view of the kept schemas again, over the relations as they are now.

        Each one again: a view made early in the build may read a relation that was
        replaced since (a resumed build drops and rebuilds what failed).
        """
        self._waiting_views = list(self._kept_views)
        self._create_waiting_views()
        for schema, name, create_sql, comment in self._waiting_views[:1]:
            try:
                self._create_kept_view(self.con, schema, name, create_sql, comment)
            except duckdb.Error as exc:
                raise WarehouseError(f'the kept view "{schema}.{name}" no longer binds: {exc}') from None
        for schema, table, column, comment in self._kept_column_comments:
            target = f"{quote(schema)}.{quote(table)}.{quote(column)}"
            self.con.execute(f"COMMENT ON COLUMN {target} IS {literal(comment)}")

    def abort(self) -> None:
        try:
            if hasattr(self, "con"):
                self.con.close()
        finally:
            for leftover in (self.staging, Path(f"{self.staging}.wal")):
                leftover.unlink(missing_ok=True)
            self._release()

    def _release(self) -> None:
        duckdb_lock.release(self._lock_file)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DuckDBTransaction(DuckDBRelations, Transaction):
    """In-place changes to the published file, on one connection.

    Atomic transactions (``update``) run everything in one DuckDB transaction: DuckDB's DDL
    is transactional, so readers in this process see the old or the new state, and the
    commit is all or nothing. While it runs, the file is open for writing, so other
    processes cannot open it; updates are meant to be short.

    It holds the warehouse's lock (:mod:`conveyor.warehouse.duckdb_lock`) from before it
    opens the file until it commits or rolls back: a load that is building would otherwise
    rename its new file over the committed changes. A busy lock is waited for, at most
    ``lock_timeout_s`` seconds, and ``waiting`` is told what for.
    """

    def __init__(
        self,
        warehouse: DuckDBWarehouse,
        *,
        run_id: str,
        atomic: bool,
        lock_timeout_s: float = 0.0,
        waiting: Callable[[str], None] | None = None,
    ):
        self.atomic = atomic
        self._init_cursors()
        kind = "update" if atomic else "upgrade"
        self._lock_file = duckdb_lock.take(
            warehouse.path, duckdb_lock.holder_text(kind, run_id), timeout_s=lock_timeout_s, waiting=waiting
        )
        try:
            self.con = self._open(warehouse)
            if atomic:
                self.con.execute("BEGIN TRANSACTION")
        except BaseException:
            duckdb_lock.release(self._lock_file)
            raise

    @staticmethod
    def _open(warehouse: DuckDBWarehouse) -> duckdb.DuckDBPyConnection:
        if not warehouse.path.exists():
            raise WarehouseError(
                f"{warehouse.describe()} does not exist yet.", hint='Run "conveyor load" to build it first.'
            )
        try:
            return connect_shared(warehouse.path)
        except duckdb.Error as exc:
            raise WarehouseError(
                f"cannot open {warehouse.describe()} for writing: {exc}",
                hint="Close programs that have it open, then try again.",
            ) from None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # one connection: every statement belongs to the same transaction
        return self.con

    def ensure_schema(self, schema: str) -> None:
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")

    def replace_rows(self, design: TableDesign, manifests: Sequence[Manifest]) -> int:
        if self.kind(design.name) != "table":
            self.drop(design.name)
            return self.load_chain(design, manifests)
        self._run(design, f"DELETE FROM {qualified(design.name)}")
        rows = self._count(design, f"INSERT INTO {qualified(design.name)} {select_extract(design, manifests[0])}")
        for manifest in manifests[1:]:
            rows += self.merge_table(design, manifest)
        return rows

    def refresh(self, design: TableDesign, sql: str) -> int:
        typed = bool(design.columns) and all(c.type for c in design.columns)
        if typed and self.kind(design.name) == "table":
            self._check_columns(design, sql)
            self._run(design, f"DELETE FROM {qualified(design.name)}")
            return self._count(design, f"INSERT INTO {qualified(design.name)} {sql}")
        self.drop(design.name)
        return self.create_table(design, sql)

    def create_view(self, design: TableDesign, sql: str) -> None:
        self.drop(design.name)
        super().create_view(design, sql)

    def publish(self) -> None:
        try:
            if self.atomic:
                self.con.execute("COMMIT")
        except duckdb.Error as exc:
            self.con.close()
            duckdb_lock.release(self._lock_file)
            raise WarehouseError(f"committing the changes failed: {exc}") from None
        crash_point("duckdb.update.after_commit")
        try:
            # folds the WAL into the file; readers with open transactions can make it wait for
            # later, which is harmless: the next load checkpoints before it replaces the file
            self.con.execute("CHECKPOINT")
        except duckdb.Error:
            pass
        finally:
            self.con.close()
            duckdb_lock.release(self._lock_file)

    def abort(self) -> None:
        try:
            if self.atomic:
                self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the transaction is already gone
        finally:
            self.con.close()
            duckdb_lock.release(self._lock_file)
