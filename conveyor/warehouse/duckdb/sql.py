"""SQL that builds relations in a DuckDB database: shared by builds and in-place transactions."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from conveyor.design.models import ColumnDesign, TableDesign
from conveyor.errors import ConveyorError, LoadError
from conveyor.faults import crash_point
from conveyor.lake.manifest import Manifest
from conveyor.lake.store import copy_hashed
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


class DuckDBRelations(Build):
    """Creates, fills and checks relations over ``self.con``, one cursor per thread."""

    con: duckdb.DuckDBPyConnection

    def _init_cursors(self) -> None:
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self.con.cursor()
            self._local.cursor = cursor
            with self._cursors_lock:
                self._cursors.append(cursor)
        return cursor

    @contextmanager
    def binding(self, schemas: Sequence[str]) -> Iterator[None]:
        """Set this thread's ``search_path`` (then ``main``, DuckDB's default) while statements run inside."""
        with super().binding(schemas):
            self._search_path(self._cursor())
            try:
                yield
            finally:
                with suppress(duckdb.Error):
                    self._cursor().execute("RESET search_path")

    def _search_path(self, cursor: duckdb.DuckDBPyConnection) -> None:
        path = self.bound_schemas()
        if path:
            cursor.execute(f"SET search_path = {literal(','.join(quote(s) for s in dict.fromkeys([*path, 'main'])))}")

    def _run(self, design: TableDesign, sql: str, params: Any = None) -> Any:
        try:
            return self._cursor().execute(sql, params)
        except duckdb.Error as exc:
            raise LoadError(f'building "{design.name}" failed in DuckDB: {exc}') from None

    @contextmanager
    def parts(self, manifest: Manifest, design: TableDesign | None = None) -> Iterator[str]:
        """The FROM item that reads an extract's parts: DuckDB's own ``read_parquet`` of local files.

        A local lake's parts are read where they are. An object store's are first streamed to
        a private temporary folder on local disk, each checked against the sha256 its
        manifest recorded, and removed after the statement. DuckDB cannot read S3 itself here
        (its extension cannot be installed offline), and every way of handing it Arrow's
        reader of the bucket cost 1.5x the CPU and about 1 GB more memory on a 6-million-row
        extract than ``read_parquet`` (docs/benchmarks.md, "Object-store lake"). The staged
        files are the compressed parts, a fraction of what the DuckDB file gains by the load.
        """
        if manifest.local:
            yield f"read_parquet({_files(manifest)})"
            return
        with tempfile.TemporaryDirectory(prefix=f"conveyor-load-{manifest.extract_id}-") as folder:
            try:
                paths = download_parts(manifest, Path(folder))
            except (OSError, ConveyorError) as exc:
                raise _unreadable(manifest, exc) from None
            yield "read_parquet([" + ", ".join(literal(str(p)) for p in paths) + "])"

    def load_table(self, design: TableDesign, manifest: Manifest) -> int:
        self._run(design, ddl.create_table(design, "duckdb"))
        with self.parts(manifest, design) as source:
            rows = self._count(
                design, f"INSERT INTO {qualified(design.name)} {select_extract(design, manifest, source)}"
            )
        self._comment(design, view=False)
        return rows

    def merge_table(self, design: TableDesign, manifest: Manifest) -> int:
        table = qualified(design.name)
        key = design.constraints.primary_key
        if key:
            match = " AND ".join(f"{table}.{quote(c)} = incoming.{quote(c)}" for c in key)
            by_name = {c.name: c for c in design.loaded_columns}
            keys = ", ".join(_loaded_value(by_name[c]) if c in by_name else quote(c) for c in key)
            with self.parts(manifest, design) as source:
                self._run(
                    design,
                    f"DELETE FROM {table} USING (SELECT DISTINCT {keys} FROM {source}) AS incoming WHERE {match}",
                )
        crash_point("warehouse.merge.mid")
        with self.parts(manifest, design) as source:
            return self._count(design, f"INSERT INTO {table} {select_extract(design, manifest, source)}")

    def _count(self, design: TableDesign, sql: str) -> int:
        """Run an INSERT and return its row count, consuming the whole result."""
        rows = self._run(design, sql).fetchall()
        return int(rows[0][0]) if rows else 0

    def fetch(self, sql: str, limit: int) -> QueryResult:
        try:
            cursor = self._cursor().execute(sql)
            columns = [column[0] for column in cursor.description or []]
            rows = cursor.fetchmany(limit + 1) if columns else []
        except duckdb.Error as exc:
            raise LoadError(f"DuckDB: {str(exc).strip()}") from None
        return QueryResult(columns, rows[:limit], len(rows) > limit)

    def output_columns(self, design: TableDesign, sql: str) -> list[tuple[str, str]]:
        """Names and types a query produces, without running it."""
        return [(r[0], r[1]) for r in self._run(design, f"DESCRIBE {sql}").fetchall()]

    def _checked(self, design: TableDesign, sql: str) -> str:
        """The query to build ``design`` from, its columns checked against the design (see ``output_select``)."""
        if not design.columns:
            return sql
        return output_select(design, sql, [name for name, _ in self.output_columns(design, sql)], "duckdb")

    def create_table(self, design: TableDesign, sql: str) -> int:
        sql = self._checked(design, sql)
        typed = design.typed
        if typed:
            self._run(design, ddl.create_table(design, "duckdb"))
            rows = self._count(design, f"INSERT INTO {qualified(design.name)} {sql}")
        else:
            # duckdb answers CREATE TABLE ... AS with the number of rows it wrote
            rows = self._count(design, f"CREATE TABLE {qualified(design.name)} AS {sql}")
        self._comment(design, view=False)
        return rows

    def create_view(self, design: TableDesign, sql: str) -> None:
        sql = self._checked(design, sql)
        self._run(design, f"CREATE VIEW {qualified(design.name)} AS {sql}")
        self._comment(design, view=True)
        if self.bound_schemas():
            self._readable_without_search_path(design)

    def _readable_without_search_path(self, design: TableDesign) -> None:
        """DuckDB binds a view's names when it is read, against its own schema and the reader's path.

        A name only the build's search path finds would break the view for every reader.
        """
        cursor = self._cursor()
        cursor.execute("RESET search_path")
        try:
            cursor.execute(f"SELECT * FROM {qualified(design.name)} LIMIT 0").fetchall()
        except duckdb.Error as exc:
            raise LoadError(
                f'the view "{design.name}" does not work for readers: {exc}',
                hint="Qualify the names of other schemas' relations (schema.table) in its SQL; DuckDB looks up "
                "a view's unqualified names in the view's own schema only.",
            ) from None
        finally:
            self._search_path(cursor)

    def _comment(self, design: TableDesign, *, view: bool) -> None:
        for statement in ddl.comments(design, view=view):
            self._run(design, statement)

    def check(self, design: TableDesign) -> list[KeyViolation]:
        found = [self._nulls(design, column) for column in unchecked_not_null(design)]
        found += [self._duplicates(design, constraint, columns) for constraint, columns in key_constraints(design)]
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

    def drop(self, name: str) -> None:
        kind = self.kind(name)
        if kind is not None:
            self._cursor().execute(f"DROP {'VIEW' if kind == 'view' else 'TABLE'} {qualified(name)}")

    def kind(self, name: str) -> str | None:
        """ "table", "view" or None: what ``name`` is in this database."""
        row = (
            self._cursor()
            .execute(
                "SELECT 'view' FROM duckdb_views() WHERE database_name = current_database() "
                "AND schema_name = ? AND view_name = ? UNION ALL "
                "SELECT 'table' FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = ? AND table_name = ?",
                [*name.split(".", 1), *name.split(".", 1)],
            )
            .fetchall()
        )
        return str(row[0][0]) if row else None

    def _close_cursors(self) -> None:
        """Close every thread's cursor, so no open result holds a transaction during CHECKPOINT."""
        with self._cursors_lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
        self._local = threading.local()


def download_parts(manifest: Manifest, folder: Path) -> list[Path]:
    """Stream an extract's parts from its store into ``folder``, checking each one's sha256."""
    filesystem, sources = manifest.arrow_files()
    paths = []
    for part, source in zip(manifest.files, sources, strict=True):
        target = folder / part.path
        with filesystem.open_input_stream(source) as stream, open(target, "wb") as out:
            digest = copy_hashed(stream, out)
        if digest != part.sha256:
            raise LoadError(f"the part {part.path} differs from what its manifest recorded (sha256).")
        paths.append(target)
    return paths


def _unreadable(manifest: Manifest, exc: BaseException) -> LoadError:
    """A part of an extract in an object store could not be read (gone, or not Parquet)."""
    text = exc.message if isinstance(exc, ConveyorError) else " ".join(str(exc).split())[:400]
    return LoadError(
        f'reading extract {manifest.extract_id} of "{manifest.relation}" at {manifest.location} failed: {text}',
        hint=f'Re-extract it: "conveyor extract {manifest.relation} --full".',
    )


def _files(manifest: Manifest) -> str:
    return "[" + ", ".join(literal(str(p)) for p in manifest.paths()) + "]"


def select_extract(design: TableDesign, manifest: Manifest, source: str | None = None) -> str:
    """``(cols) SELECT cols FROM <source>`` for the design's loaded columns.

    ``source`` is the FROM item that reads the parts (:meth:`DuckDBRelations.parts`); by
    default ``read_parquet`` of a local extract's files.
    """
    present = set(manifest.arrow_schema.names)
    missing = [c.name for c in design.loaded_columns if c.name not in present]
    if missing:
        raise LoadError(
            f'the extract {manifest.extract_id} of "{design.name}" lacks column(s) {", ".join(missing)}.',
            hint=f'Re-extract it: "conveyor extract {design.name} --full".',
        )
    columns = ", ".join(quote(c.name) for c in design.loaded_columns)
    values = ", ".join(_loaded_value(c) for c in design.loaded_columns)
    return f"({columns}) SELECT {values} FROM {source or f'read_parquet({_files(manifest)})'}"


def _loaded_value(column: ColumnDesign) -> str:
    """How a column is read from the lake: ``char(n)`` without its trailing blanks, the value
    PostgreSQL gives when it casts char(n) to text (the same on every warehouse; docs/types.md)."""
    sql_type = column.sql_type
    if sql_type.name == "char" and not sql_type.is_array:
        return f"rtrim({quote(column.name)}, ' ') AS {quote(column.name)}"
    return quote(column.name)
