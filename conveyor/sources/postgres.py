"""PostgreSQL (13+) as an upstream source.

Reads stream through ADBC (``adbc-driver-postgresql``), which runs ``COPY (SELECT ...) TO
STDOUT (FORMAT BINARY)`` and decodes the binary rows into Arrow in C++: about five times
faster than psycopg's COPY or a server-side cursor, with memory bounded by one batch
(see ``bench/readers.py``). ADBC returns ``numeric`` as its decimal string; it is cast to
the design's ``decimal(p,s)`` here, which raises on any lost digit. The catalog, filters'
parameters, snapshots and split points go through psycopg.

Every session runs with ``TimeZone=UTC`` so nothing depends on the server's settings.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Self

import psycopg
import pyarrow as pa
from psycopg import sql as psql

from conveyor import cancel
from conveyor.config.secrets import mask_dsn, scrub_dsn
from conveyor.design.types import SqlType
from conveyor.errors import ConveyorError, ExtractError, TransientError
from conveyor.sources.base import ColumnInfo, ReadRequest, Source, TableInfo
from conveyor.sources.partition import distinct_sorted
from conveyor.sources.pgchecks import check_infinite, check_ndims
from conveyor.sources.typemap import assemble, convert, rebatch
from conveyor.sources.verdict import STRING_TYPES, ColumnRef, Verdict, missing_column_error, missing_table_error, refuse

#: schemas list_tables() never shows
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

#: design type of an unconstrained ``numeric``; every value is checked to fit at read time
UNCONSTRAINED_NUMERIC = SqlType("decimal", 38, 9)

#: session settings applied to every connection (values must not depend on the server's)
SESSION_SETTINGS = (
    "SET TIME ZONE 'UTC'",
    "SET DateStyle = 'ISO, MDY'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 3",
    "SET application_name = 'conveyor'",
)

# sqlstates worth retrying: connection problems, serialization failure, deadlock,
# too many connections, server shutting down / starting up
_TRANSIENT_SQLSTATES = {"40001", "40P01", "53300", "57P01", "57P02", "57P03", "55P03"}
_TRANSIENT_PATTERNS = (
    "server closed the connection",
    "connection reset",
    "could not receive data",
    "could not send data",
    "terminating connection",
    "connection to server was lost",
    "the connection is lost",
    "ssl syscall error",
    "no connection to the server",
)

_SIMPLE_TYPES: dict[str, SqlType] = {
    "bool": SqlType("boolean"),
    "int2": SqlType("smallint"),
    "int4": SqlType("integer"),
    "int8": SqlType("bigint"),
    "float4": SqlType("real"),
    "float8": SqlType("double"),
    "text": SqlType("text"),
    "varchar": SqlType("text"),
    "bpchar": SqlType("text"),  # unbounded bpchar; char(n) is handled in design_type
    "name": SqlType("text"),
    "char": SqlType("text"),
    "citext": SqlType("text"),
    "date": SqlType("date"),
    "time": SqlType("time"),
    "timestamp": SqlType("timestamp"),
    "timestamptz": SqlType("timestamptz"),
    "uuid": SqlType("uuid"),
    "json": SqlType("json"),
    "jsonb": SqlType("json"),
    "bytea": SqlType("bytes"),
}

# types ADBC already returns as Arrow strings; everything else read as text gets ::text
# ("char" too: its binary form of '' is a NUL byte, its text form the empty string)
_TEXT_NATIVE = {"text", "varchar", "bpchar", "name"}
_SNAPSHOT_RE = re.compile(r"^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9A-Fa-f]+)?$")


@dataclass(frozen=True)
class PgColumn:
    """One column as pg_catalog describes it (domains resolved to their base type)."""

    name: str
    native: str
    not_null: bool
    typname: str
    typtype: str
    typmod: int
    elem_name: str | None = None
    elem_type: str | None = None
    comment: str | None = None

    @property
    def is_array(self) -> bool:
        return self.elem_name is not None

    @property
    def scalar_name(self) -> str:
        return self.elem_name if self.elem_name is not None else self.typname

    @property
    def scalar_kind(self) -> str | None:
        return self.elem_type if self.is_array else self.typtype


def numeric_type(typmod: int) -> SqlType:
    """The design type of ``numeric`` with this typmod (-1: unconstrained)."""
    if typmod < 4:
        return UNCONSTRAINED_NUMERIC
    precision = ((typmod - 4) >> 16) & 0xFFFF
    # PostgreSQL 15 stores the scale as a signed 11-bit number
    scale = (((typmod - 4) & 0x7FF) ^ 1024) - 1024
    if scale < 0:
        return SqlType("decimal", precision - scale, 0)
    if scale > precision:
        return SqlType("decimal", scale, scale)
    return SqlType("decimal", precision, scale)


def design_type(column: PgColumn) -> SqlType | None:
    """The exact design type of a PostgreSQL column, or None when there is none."""
    name = column.scalar_name
    if column.scalar_kind == "e":
        scalar: SqlType | None = SqlType("text")
    elif name == "numeric":
        scalar = numeric_type(column.typmod)
    elif name == "bpchar" and not column.is_array and column.typmod >= 5:
        scalar = SqlType("char", column.typmod - 4)  # blank-padded: see docs/types.md
    else:
        scalar = _SIMPLE_TYPES.get(name)
    if scalar is None:
        return None
    return SqlType(scalar.name, scalar.precision, scalar.scale, column.is_array)


TEXT = SqlType("text")
TEXT_ARRAY = SqlType("text", is_array=True)


def column_info(column: PgColumn) -> ColumnInfo:
    """What ``describe`` says of one column: its exact design type, or its text form."""
    sql_type = design_type(column)
    text_form = None if sql_type is not None else f"PostgreSQL's text form of {column.native}"
    return ColumnInfo(column.name, sql_type, column.native, column.not_null, column.comment, text_form)


_COLUMNS_SQL = """
SELECT a.attname,
       format_type(a.atttypid, a.atttypmod),
       a.attnotnull,
       bt.typname,
       bt.typtype,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       ebt.typname,
       ebt.typtype,
       col_description(a.attrelid, a.attnum)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type et ON bt.typcategory = 'A' AND et.oid = bt.typelem
LEFT JOIN pg_type ebt ON ebt.oid = CASE WHEN et.typtype = 'd' THEN et.typbasetype ELSE et.oid END
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_KEYS_SQL = """
SELECT i.indisprimary, array_agg(a.attname::text ORDER BY k.ord)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisunique AND i.indisvalid
  AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts
GROUP BY i.indexrelid, i.indisprimary, ic.relname
ORDER BY NOT i.indisprimary, ic.relname
"""

_TABLE_SQL = """
SELECT c.oid, c.reltuples::bigint, obj_description(c.oid, 'pg_class')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""

_LIST_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'
ORDER BY 1, 2
"""


@dataclass
class _Plan:
    """How one requested column is selected and converted."""

    name: str
    select: str
    target: SqlType
    ref: ColumnRef
    column: PgColumn
    ndims: str | None = None


class PostgresSource(Source):
    """A PostgreSQL database reached through a ``postgresql://`` DSN."""

    ENGINE = "postgres"
    DIALECT = "postgres"
    DEFAULT_SCHEMA = "public"
    SUPPORTS_SNAPSHOT = True
    SUPPORTS_CTID = True
    PLACEHOLDER = "{{?}}"

    def __init__(self, name: str, dsn: str, *, connect_timeout: int = 10):
        super().__init__(name, dsn)
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> Self:
        return self

    # ------------------------------------------------------------------ connections

    def _connect(self) -> psycopg.Connection[Any]:
        """A new autocommit psycopg connection with the session settings applied."""
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
        except psycopg.Error as exc:
            raise self._connect_error(exc) from None
        cancel.watch_connection(conn)
        with self._errors():
            for statement in SESSION_SETTINGS:
                conn.execute(statement)
        return conn

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The catalog connection, opened on first use and reopened after a loss."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        """Close the catalog connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect_error(self, exc: BaseException) -> ConveyorError:
        text = scrub_dsn(str(exc).strip(), self.dsn)
        message = f'cannot connect to source "{self.name}" at {mask_dsn(self.dsn)}: {text}'
        if getattr(exc, "sqlstate", None) in _TRANSIENT_SQLSTATES:
            return TransientError(message)
        return ExtractError(message, hint="Check the host, port, user, password and database in the DSN.")

    def translate(self, exc: BaseException, statement: str | None = None) -> ConveyorError:
        """Turn a driver exception into ``TransientError`` or ``ExtractError`` (password scrubbed)."""
        if isinstance(exc, ConveyorError):
            return exc
        text = scrub_dsn(str(exc).strip(), self.dsn)
        sqlstate = str(getattr(exc, "sqlstate", None) or "")
        where = f" while running: {scrub_dsn(statement, self.dsn)}" if statement else ""
        message = f'source "{self.name}" ({mask_dsn(self.dsn)}) failed{where}: {text}'
        lowered = text.lower()
        if (
            sqlstate in _TRANSIENT_SQLSTATES
            or sqlstate.startswith("08")
            or any(p in lowered for p in _TRANSIENT_PATTERNS)
        ):
            return TransientError(message)
        return ExtractError(message)

    @contextmanager
    def _errors(self, statement: str | None = None) -> Iterator[None]:
        try:
            yield
        except ConveyorError:
            raise
        except Exception as exc:
            if _is_driver_error(exc):
                raise self.translate(exc, statement) from None
            raise

    def _query(self, statement: str, params: tuple[object, ...] | None = None) -> list[tuple[Any, ...]]:
        with self._errors(statement), self.conn.cursor() as cur:
            cur.execute(statement.encode(), params)
            return cur.fetchall()

    # ------------------------------------------------------------------ catalog

    def list_tables(self) -> list[tuple[str, str]]:
        """Every table, view and foreign table outside the system schemas."""
        return [(s, t) for s, t in self._query(_LIST_SQL, (list(SYSTEM_SCHEMAS),))]

    def row_estimate(self, schema: str, table: str) -> int | None:
        """The planner's estimate (``reltuples``), without reflecting the columns."""
        _oid, reltuples = self._table_oid(schema, table)
        return reltuples if reltuples is not None and reltuples >= 0 else None

    def _table_oid(self, schema: str, table: str) -> tuple[int, int]:
        oid, reltuples, _comment = self._table_row(schema, table)
        return oid, reltuples

    def _table_row(self, schema: str, table: str) -> tuple[int, int, str | None]:
        rows = self._query(_TABLE_SQL, (schema, table))
        if not rows:
            known = [f"{s}.{t}" for s, t in self.list_tables()]
            raise missing_table_error(self.name, schema, table, known)
        return rows[0][0], rows[0][1], rows[0][2]

    def pg_columns(self, schema: str, table: str) -> list[PgColumn]:
        """The table's columns with their resolved catalog types."""
        oid, _ = self._table_oid(schema, table)
        return [PgColumn(*row) for row in self._query(_COLUMNS_SQL, (oid,))]

    def column_names(self, schema: str, table: str) -> list[str]:
        return [c.name for c in self.pg_columns(schema, table)]

    def describe(self, schema: str, table: str) -> TableInfo:
        """Reflect columns, keys and the planner's row estimate.

        A column whose type has no exact design type has ``type`` None and a ``text_form``:
        every PostgreSQL type has a text form its own input function reads back.
        """
        oid, reltuples, comment = self._table_row(schema, table)
        columns = [column_info(col) for col in (PgColumn(*row) for row in self._query(_COLUMNS_SQL, (oid,)))]
        primary: tuple[str, ...] = ()
        unique: list[tuple[str, ...]] = []
        for is_primary, names in self._query(_KEYS_SQL, (oid,)):
            if is_primary:
                primary = tuple(names)
            else:
                unique.append(tuple(names))
        estimate = reltuples if reltuples is not None and reltuples >= 0 else None
        return TableInfo(schema, table, tuple(columns), primary, tuple(unique), estimate, comment)

    # ------------------------------------------------------------------ reading

    def _plan(self, request: ReadRequest) -> list[_Plan]:
        by_name = {c.name: c for c in self.pg_columns(request.schema, request.table)}
        plans = []
        for name, target in request.columns:
            col = by_name.get(name)
            if col is None:
                raise missing_column_error(self.name, request.schema, request.table, name, by_name)
            plans.append(self._plan_column(request, col, target))
        return plans

    def read_verdict(self, column: ColumnInfo, target: SqlType) -> Verdict:
        """The generic verdict, plus the server's text form: any column reads as ``text``, any
        array as ``text[]``."""
        if target == TEXT:
            return "same" if column.type in (TEXT, None) else "widening"
        if target == TEXT_ARRAY and (column.type is None or column.type.is_array):
            native_array = column.type is not None or column.native_type.endswith("[]")
            return "widening" if native_array else "mismatch"
        return super().read_verdict(column, target)

    def _plan_column(self, request: ReadRequest, col: PgColumn, target: SqlType) -> _Plan:
        ref = ColumnRef(self.name, request.schema, request.table, col.name, col.native)
        quoted = self.quote(col.name)
        info = column_info(col)
        refuse(self.read_verdict(info, target), ref, target, mapped=info.type is not None)
        cast = col.scalar_name not in _TEXT_NATIVE or col.scalar_kind == "e"
        if target.name in STRING_TYPES and not target.is_array:
            # exact server-side rendering (numeric digits, timetz, money, array literals, ...)
            select = f"{quoted}::text" if cast or col.is_array else quoted
            return _Plan(col.name, f"{select} AS {quoted}", target, ref, col)
        select = f"{quoted}::text[]" if cast and target.name in STRING_TYPES else quoted
        if col.scalar_kind == "e":
            select = f"{quoted}::text[]" if col.is_array else f"{quoted}::text"
        elif col.scalar_name == "numeric" and not col.is_array:
            # the server renders numeric text far faster than ADBC decodes binary numerics on
            # the client (a third of an extract's CPU); the exact decimal cast reads the text
            select = f"{quoted}::text"
        ndims = f"array_ndims({quoted})" if col.is_array else None
        return _Plan(col.name, f"{select} AS {quoted}", target, ref, col, ndims)

    def build_sql(self, request: ReadRequest, plans: list[_Plan]) -> str:
        """The SELECT for a request with its parameters inlined as literals.

        ``request.where`` uses ``%s`` placeholders (and ``%%`` for a literal ``%`` when there
        are params); psycopg renders the values as quoted literals, because ADBC streams
        over COPY only for statements without parameters.
        """
        items = [p.select for p in plans]
        items += [f"{p.ndims} AS {self.quote('__ndims_' + p.name)}" for p in plans if p.ndims]
        text = f"SELECT {', '.join(items) or 'NULL'} FROM {self.quote(request.schema)}.{self.quote(request.table)}"
        if request.where:
            text += f" WHERE {self.inline(request.where, request.params)}"
        if request.order_by:
            text += " ORDER BY " + ", ".join(self.quote(c) for c in request.order_by)
        return text

    def read(self, request: ReadRequest, *, snapshot: str | None = None) -> Iterator[pa.RecordBatch]:
        """Stream the rows as batches of ``request.batch_rows`` rows with the requested schema.

        Args:
            request: table, columns with their design types, filter and batch size.
            snapshot: an id from :meth:`export_snapshot`; the read then sees exactly that
                snapshot (REPEATABLE READ with ``SET TRANSACTION SNAPSHOT``).
        """
        plans = self._plan(request)
        statement = self.build_sql(request, plans)
        schema = request.arrow_schema
        raw = self._stream(statement, snapshot, request.buffer_bytes)
        converted = (self._convert(batch, plans, schema) for batch in raw)
        yield from rebatch(converted, schema, request.batch_rows)

    def _adbc_connect(self) -> Any:
        import adbc_driver_postgresql.dbapi as adbc

        try:
            conn = adbc.connect(self.dsn, autocommit=True)
        except Exception as exc:
            raise self._connect_error(exc) from None
        cur = conn.cursor()
        with self._errors():
            for statement in SESSION_SETTINGS:
                cur.execute(statement)
        cur.close()
        return conn

    def _stream(self, statement: str, snapshot: str | None, batch_bytes: int) -> Iterator[pa.RecordBatch]:
        conn = self._adbc_connect()
        cur = conn.cursor()
        # the driver's batches are the read's largest buffers: size them from the memory budget
        cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(batch_bytes)})
        try:
            with cancel.watching(conn.adbc_cancel), self._errors(statement):
                if snapshot is not None:
                    if not _SNAPSHOT_RE.match(snapshot):
                        raise ExtractError(f'"{snapshot}" is not a PostgreSQL snapshot id.')
                    cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                cur.execute(statement)
                reader = cur.fetch_record_batch()
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    except (pa.ArrowException, OSError) as exc:
                        # ADBC's stream reports libpq errors through Arrow's status
                        raise self.translate(exc, statement) from None
                    yield batch
                if snapshot is not None:
                    cur.execute("COMMIT")
        finally:
            # a half-read COPY cannot be resumed: closing the connection ends it
            for closable in (cur, conn):
                with suppress(Exception):
                    closable.close()

    def _convert(self, batch: pa.RecordBatch, plans: list[_Plan], schema: pa.Schema) -> pa.RecordBatch:
        arrays = []
        for i, plan in enumerate(plans):
            arr = batch.column(i)
            if plan.ndims:
                check_ndims(batch.column(batch.schema.get_field_index("__ndims_" + plan.name)), plan.ref)
            check_infinite(arr, plan.ref)
            arrays.append(convert(arr, plan.target, plan.ref))
        return assemble(arrays, schema)

    # ------------------------------------------------------------------ snapshots and splits

    @contextmanager
    def export_snapshot(self) -> Iterator[str]:
        """Hold a REPEATABLE READ transaction open and yield its exported snapshot id.

        Reads given ``snapshot=<id>`` (on any connection) see exactly this snapshot until
        the context exits. If the connection holding it is lost (the server ended it, the
        network failed), the snapshot is gone and reads that had not imported it yet fail:
        such a failure is a ``TransientError``, so the whole table is read again from a new
        snapshot. Reads that imported it stay consistent. Closing the connection never
        replaces the error of the reads.
        """
        conn = self._connect()
        try:
            with self._errors("SELECT pg_export_snapshot()"):
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            assert row is not None
            try:
                yield str(row[0])
            except Exception as exc:
                if not isinstance(exc, TransientError) and _lost(conn):
                    raise TransientError(
                        f'source "{self.name}" ({mask_dsn(self.dsn)}) lost the connection holding the exported '
                        f"snapshot, so the table is read again from a new snapshot: {scrub_dsn(str(exc), self.dsn)}"
                    ) from exc
                raise
        finally:
            with suppress(Exception):  # closing ends the transaction; a lost connection has nothing to end
                conn.close()

    def snapshot(self) -> AbstractContextManager[str | None]:
        """Partitions share one exported snapshot (``pg_export_snapshot``)."""
        return self.export_snapshot()

    def min_max(
        self, schema: str, table: str, column: str, where: str | None = None, params: tuple[object, ...] = ()
    ) -> tuple[Any, Any]:
        """``(min, max)`` of a column, optionally filtered (``where`` with ``%s`` params)."""
        col = self.quote(column)
        text = f"SELECT min({col}), max({col}) FROM {self.quote(schema)}.{self.quote(table)}"
        if where:
            text += f" WHERE {self.inline(where, params)}"
        rows = self._query(text, None)
        return rows[0][0], rows[0][1]

    def quantiles(self, schema: str, table: str, column: str, n: int) -> list[Any]:
        """Up to ``n - 1`` distinct cut points splitting the column into ``n`` similar parts.

        Use with :func:`conveyor.sources.partition.range_filters` to build partition filters.
        """
        if n < 2:
            return []
        fractions = [i / n for i in range(1, n)]
        col = self.quote(column)
        text = (
            f"SELECT percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY {col}) "
            f"FROM {self.quote(schema)}.{self.quote(table)}"
        )
        rows = self._query(text, (fractions,))
        return distinct_sorted(rows[0][0] or [])

    def ctid_ranges(self, schema: str, table: str, n: int) -> list[str]:
        """``n`` WHERE fragments on ``ctid`` splitting the table by block numbers.

        Uses the relation's current size (not the possibly stale ``relpages``); the first
        range is open below and the last open above, so every row is in exactly one.
        """
        text = (
            "SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s"
        )
        rows = self._query(text, (schema, table))
        if not rows:
            raise missing_table_error(self.name, schema, table, [f"{s}.{t}" for s, t in self.list_tables()])
        blocks = int(rows[0][0])
        n = max(1, min(n, blocks))
        bounds = sorted({blocks * i // n for i in range(1, n)})
        if not bounds:
            return ["TRUE"]
        parts = [f"ctid < '({bounds[0]},0)'::tid"]
        parts += [f"ctid >= '({lo},0)'::tid AND ctid < '({hi},0)'::tid" for lo, hi in itertools.pairwise(bounds)]
        parts.append(f"ctid >= '({bounds[-1]},0)'::tid")
        return parts

    def literal(self, value: object) -> str:
        """``value`` as a quoted SQL literal (for building filters outside ``params``)."""
        with self._errors():
            return psql.Literal(value).as_string(self.conn)


def _lost(conn: psycopg.Connection[Any]) -> bool:
    """Whether a connection is gone (asks the server when psycopg does not know yet)."""
    if conn.closed or conn.broken:
        return True
    try:
        conn.execute("SELECT 1")
    except psycopg.Error:
        return True
    return False


def _is_driver_error(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.Error):
        return True
    module = type(exc).__module__
    return module.startswith("adbc_driver")
