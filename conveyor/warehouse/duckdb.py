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
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa

from conveyor.config.settings import EnvironmentConfig
from conveyor.design.models import TableDesign
from conveyor.errors import LoadError, WarehouseError
from conveyor.lake.manifest import Manifest, fsync_dir
from conveyor.warehouse import ddl
from conveyor.warehouse.base import Build, KeyViolation, Warehouse, literal, qualified, quote

_INTERNAL_SCHEMAS = ("information_schema", "pg_catalog")


def staging_path(target: Path, run_id: str) -> Path:
    """The private file a run builds into, beside the warehouse.

    DuckDB names the catalog after the file name up to its first dot; this one never equals
    a schema name, which would make "schema.table" ambiguous while building.
    """
    return target.with_name(f".conveyor_build_{run_id}.{target.name}.building")


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

    def __init__(self, name: str, dsn: str, *, root: Path | None = None, config: EnvironmentConfig | None = None):
        super().__init__(name, dsn)
        self.path = duckdb_path(dsn, root)
        self.keep_backup = config.keep_backup if config else True

    def describe(self) -> str:
        return f"DuckDB file {self.path}"

    def begin(
        self, schemas: Sequence[str], *, run_id: str, keep_schemas: bool = True, resume_from: str | None = None
    ) -> DuckDBBuild:
        return DuckDBBuild(self.path, list(schemas), run_id, keep_schemas, self.keep_backup, resume_from)

    def connect(self, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """Open the published file (read-only by default)."""
        return duckdb.connect(str(self.path), read_only=read_only)

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


class DuckDBBuild(Build):
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
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._lock_file = self._lock()
        try:
            if resume_from and not self.staging.exists():
                raise WarehouseError(
                    f"the build of run {resume_from} is no longer there to resume (another load replaced it).",
                    hint="Run the load again without --resume.",
                )
            self._remove_leftovers()
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

    def _remove_leftovers(self) -> None:
        # builds that crashed before publishing; the lock proves none is still running
        for leftover in self.target.parent.glob(f".conveyor_build_*.{self.target.name}.building*"):
            if leftover.name not in (self.staging.name, f"{self.staging.name}.wal"):
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

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self.con.cursor()
            self._local.cursor = cursor
            with self._cursors_lock:
                self._cursors.append(cursor)
        return cursor

    def _run(self, design: TableDesign, sql: str, params: Any = None) -> Any:
        try:
            return self._cursor().execute(sql, params)
        except duckdb.Error as exc:
            raise LoadError(f'building "{design.name}" failed in DuckDB: {exc}') from None

    def load_table(self, design: TableDesign, manifest: Manifest) -> int:
        self._run(design, ddl.create_table(design, "duckdb"))
        rows = self._count(design, f"INSERT INTO {qualified(design.name)} {_select_extract(design, manifest)}")
        self._comment(design, view=False)
        return rows

    def merge_table(self, design: TableDesign, manifest: Manifest) -> int:
        table = qualified(design.name)
        key = design.constraints.primary_key
        if key:
            match = " AND ".join(f"{table}.{quote(c)} = incoming.{quote(c)}" for c in key)
            keys = ", ".join(quote(c) for c in key)
            files = _files(manifest)
            self._run(
                design,
                f"DELETE FROM {table} USING (SELECT DISTINCT {keys} FROM read_parquet({files})) AS incoming "
                f"WHERE {match}",
            )
        return self._count(design, f"INSERT INTO {table} {_select_extract(design, manifest)}")

    def _count(self, design: TableDesign, sql: str) -> int:
        """Run an INSERT and return its row count, consuming the whole result."""
        rows = self._run(design, sql).fetchall()
        return int(rows[0][0]) if rows else 0

    def output_columns(self, design: TableDesign, sql: str) -> list[tuple[str, str]]:
        """Names and types a query produces, without running it."""
        return [(r[0], r[1]) for r in self._run(design, f"DESCRIBE {sql}").fetchall()]

    def _check_columns(self, design: TableDesign, sql: str) -> None:
        if not design.columns:
            return
        produced = [name for name, _ in self.output_columns(design, sql)]
        expected = [c.name for c in design.columns]
        if produced != expected:
            raise LoadError(
                f'the SQL of "{design.name}" produces columns ({", ".join(produced)}) '
                f"but the design lists ({', '.join(expected)}).",
                hint="Make the SELECT list and the design's columns agree, in the same order.",
            )

    def create_table(self, design: TableDesign, sql: str) -> int:
        self._check_columns(design, sql)
        typed = bool(design.columns) and all(c.type for c in design.columns)
        if typed:
            self._run(design, ddl.create_table(design, "duckdb"))
            rows = self._count(design, f"INSERT INTO {qualified(design.name)} {sql}")
        else:
            self._run(design, f"CREATE TABLE {qualified(design.name)} AS {sql}")
            rows = self._count(design, f"SELECT count(*) FROM {qualified(design.name)}")
        self._comment(design, view=False)
        return rows

    def create_view(self, design: TableDesign, sql: str) -> None:
        self._check_columns(design, sql)
        self._run(design, f"CREATE VIEW {qualified(design.name)} AS {sql}")
        self._comment(design, view=True)

    def _comment(self, design: TableDesign, *, view: bool) -> None:
        for statement in ddl.comments(design, view=view):
            self._run(design, statement)

    def check(self, design: TableDesign) -> list[KeyViolation]:
        keys: list[tuple[str, list[str]]] = []
        if design.constraints.primary_key:
            keys.append(("primary_key", design.constraints.primary_key))
        keys.extend(("unique", cols) for cols in design.constraints.unique)
        if design.constraints.natural_key:
            keys.append(("natural_key", design.constraints.natural_key))
        found = [self._nulls(design, column) for column in _not_null_columns(design)]
        found += [self._duplicates(design, constraint, columns) for constraint, columns in keys]
        return [violation for violation in found if violation is not None]

    def _nulls(self, design: TableDesign, column: str) -> KeyViolation | None:
        """NOT NULL is in the DDL of typed tables; untyped CTAS tables are checked here."""
        count = self._count(design, f"SELECT count(*) FROM {qualified(design.name)} WHERE {quote(column)} IS NULL")
        return KeyViolation(design.name, "not_null", (column,), (), count) if count else None

    def _duplicates(self, design: TableDesign, constraint: str, columns: list[str]) -> KeyViolation | None:
        cols = ", ".join(quote(c) for c in columns)
        table = qualified(design.name)
        # rows with a NULL in the key are not duplicates (SQL unique semantics)
        present = " AND ".join(f"{quote(c)} IS NOT NULL" for c in columns)
        rows = self._run(
            design,
            f"SELECT {cols}, count(*) OVER () AS n FROM {table} WHERE {present} GROUP BY {cols} "
            f"HAVING count(*) > 1 ORDER BY {cols} LIMIT 5",
        ).fetchall()
        if not rows:
            return None
        examples = tuple("(" + ", ".join(repr(v) for v in row[:-1]) + ")" for row in rows)
        return KeyViolation(design.name, constraint, tuple(columns), examples, int(rows[0][-1]))

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
            if Path(f"{self.target}.wal").exists():
                raise WarehouseError(
                    f"{self.target}.wal exists: another program wrote to the warehouse without checkpointing.",
                    hint="Open it once with DuckDB and run CHECKPOINT, then load again.",
                )
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

    def drop(self, name: str) -> None:
        (database,) = self.con.execute("SELECT current_database()").fetchone() or ("",)
        kind = _relations(self.con, str(database)).get(name)
        if kind is not None:
            self.con.execute(f"DROP {'VIEW' if kind == 'view' else 'TABLE'} {qualified(name)}")

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

    def _close_cursors(self) -> None:
        """Close every thread's cursor, so no open result holds a transaction during CHECKPOINT."""
        with self._cursors_lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
        self._local = threading.local()

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


def _not_null_columns(design: TableDesign) -> list[str]:
    """Columns that must hold no NULL but whose DDL may not say so (untyped CTAS)."""
    if design.columns and all(c.type for c in design.columns):
        return []
    declared = [c.name for c in design.loaded_columns if c.not_null]
    return declared + [c for c in design.constraints.primary_key if c not in declared]


def _files(manifest: Manifest) -> str:
    return "[" + ", ".join(literal(str(p)) for p in manifest.paths()) + "]"


def _select_extract(design: TableDesign, manifest: Manifest) -> str:
    """``(cols) SELECT cols FROM read_parquet(parts)`` for the design's loaded columns."""
    present = set(manifest.arrow_schema.names)
    missing = [c.name for c in design.loaded_columns if c.name not in present]
    if missing:
        raise LoadError(
            f'the extract {manifest.extract_id} of "{design.name}" lacks column(s) {", ".join(missing)}.',
            hint=f'Re-extract it: "conveyor extract {design.name} --full".',
        )
    columns = ", ".join(quote(c.name) for c in design.loaded_columns)
    return f"({columns}) SELECT {columns} FROM read_parquet({_files(manifest)})"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
