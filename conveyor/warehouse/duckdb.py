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

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import duckdb
import pyarrow as pa
import tenacity

from conveyor.config.settings import EnvironmentConfig
from conveyor.design.models import TableDesign
from conveyor.errors import WarehouseError
from conveyor.lake.manifest import Manifest, fsync_dir
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

    def transaction(self, *, run_id: str, atomic: bool = True) -> DuckDBTransaction:
        return DuckDBTransaction(self, atomic=atomic)

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
        self._lock_file = self._lock()
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

    def _lock(self) -> IO[str]:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.target.with_name(f".{self.target.name}.lock"), "w")  # noqa: SIM115 - held until publish
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise WarehouseError(
                f"another load into {self.target} is running.", hint="Wait for it to finish, then try again."
            ) from None
        return handle

    def _remove_leftovers(self, *, resuming: bool) -> None:
        # builds that crashed before publishing; the lock proves none is still running. A new
        # (not resumed) build also drops a kept build of its own run id: a pipeline retries a
        # failed load under the same run id, and must not reopen the failed attempt's file
        for leftover in self.target.parent.glob(f".conveyor_build_*.{self.target.name}.building*"):
            if not resuming or leftover.name not in (self.staging.name, f"{self.staging.name}.wal"):
                leftover.unlink(missing_ok=True)

    def _copy_kept_schemas(self, *, copy_tables: bool = True) -> None:
        """Carry over every schema this build does not replace, with DDL, data and comments.

        Views are only noted here and created at publish time, after everything they may
        read exists. A resumed build has its tables already and only notes the views.
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
            _checkpoint_published(self.target)
            backup = self.target.with_name(self.target.name + ".previous")
            backup.unlink(missing_ok=True)
            if self.target.exists() and self.keep_backup:
                os.link(self.target, backup)
            os.replace(self.staging, self.target)
            fsync_dir(self.target.parent)
        except BaseException:
            self.abort()
            raise
        self._release()

    def suspend(self) -> None:
        """Keep the unpublished file for ``conveyor load --resume``; the warehouse is untouched."""
        try:
            self._close_cursors()
            self.con.execute("CHECKPOINT")
            self.con.close()
        finally:
            self._release()

    def _restore_kept_views(self) -> None:
        """Views of kept schemas go last: they may read relations this build created."""
        for schema, name, create_sql, comment in getattr(self, "_kept_views", []):
            try:
                self.con.execute(create_sql)
                if comment:
                    self.con.execute(f"COMMENT ON VIEW {quote(schema)}.{quote(name)} IS {literal(comment)}")
            except duckdb.Error as exc:
                raise WarehouseError(f'the kept view "{schema}.{name}" no longer binds: {exc}') from None
        for schema, table, column, comment in getattr(self, "_kept_column_comments", []):
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
        if not self._lock_file.closed:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()


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
    """

    def __init__(self, warehouse: DuckDBWarehouse, *, atomic: bool):
        self.atomic = atomic
        self._init_cursors()
        if not warehouse.path.exists():
            raise WarehouseError(
                f"{warehouse.describe()} does not exist yet.", hint='Run "conveyor load" to build it first.'
            )
        try:
            self.con = connect_shared(warehouse.path)
        except duckdb.Error as exc:
            raise WarehouseError(
                f"cannot open {warehouse.describe()} for writing: {exc}",
                hint="Close programs that have it open, then try again.",
            ) from None
        if atomic:
            self.con.execute("BEGIN TRANSACTION")

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
            raise WarehouseError(f"committing the changes failed: {exc}") from None
        try:
            # folds the WAL into the file; readers with open transactions can make it wait for
            # later, which is harmless: the next load checkpoints before it replaces the file
            self.con.execute("CHECKPOINT")
        except duckdb.Error:
            pass
        finally:
            self.con.close()

    def abort(self) -> None:
        try:
            if self.atomic:
                self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the transaction is already gone
        finally:
            self.con.close()
