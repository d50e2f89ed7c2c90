"""MySQL 8 and MariaDB 10.11 as an upstream source.

Reads stream through connectorx (``return_type="arrow_stream"``), which decodes MySQL's
binary protocol into Arrow in Rust over one unbuffered connection: about ten times
faster than pymysql's unbuffered ``SSCursor``, with memory bounded by one batch (see
``bench/readers.py``). connectorx is not exact for every type, so some columns travel in
a wire form chosen here and are converted exactly in Arrow:

* ``DECIMAL`` as itself when connectorx's ``decimal(38,10)`` holds it exactly (at most 10
  digits after the point and 18 before), otherwise as ``CAST(col AS CHAR)`` (connectorx goes
  through a 28-digit decimal and rounds to scale 10); either way cast to ``decimal(p,s)``,
  which raises on any lost digit;
* ``DATE`` as the number ``col + 0`` (``YYYYMMDD``; connectorx aborts on zero dates), and
  ``DATETIME`` and ``TIMESTAMP`` as their text, converted in Arrow; zero dates become NULL
  with a warning;
* ``TIME`` as signed microseconds, checked to lie within one day.

The catalog, filters' parameters and split points go through pymysql. Sessions use
``time_zone = '+00:00'`` and ``utf8mb4``.

connectorx decodes on a thread of its own and queues its batches without bound, so a read
goes through a :class:`~conveyor.sources.relay.Throttle`: the server's bytes pass only while
the reader waits for a batch, plus ``ReadRequest.buffer_bytes`` of read-ahead. Memory stays
flat whatever the table's size, and the read is still one statement (one snapshot).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc
import pymysql
import pymysql.cursors

from conveyor import cancel
from conveyor.config.secrets import mask_dsn, scrub_dsn
from conveyor.design.types import SqlType
from conveyor.errors import ConveyorError, ExtractError, TransientError
from conveyor.sources.base import ColumnInfo, ReadRequest, Source, TableInfo
from conveyor.sources.mysql_types import (
    SPATIAL_TYPES,
    TEXT,
    MyColumn,
    column_info,
    date_from_number,
    design_type,
    time_from_micros,
)
from conveyor.sources.partition import distinct_sorted
from conveyor.sources.relay import Throttle
from conveyor.sources.typemap import assemble, convert, rebatch
from conveyor.sources.verdict import ColumnRef, Verdict, missing_column_error, missing_table_error, read_verdict, refuse

log = logging.getLogger("conveyor.sources")
#: schemas (databases) list_tables() never shows
SYSTEM_SCHEMAS = ("mysql", "sys", "performance_schema", "information_schema")
#: statements run on every session before reading
SESSION_SETTINGS = ("SET NAMES utf8mb4", "SET time_zone = '+00:00'")
# lock wait timeout, deadlock, server gone away, lost connection, too many connections,
# server shutdown, lost connection during query, query interrupted by shutdown
_TRANSIENT_CODES = {1205, 1213, 2006, 2013, 1040, 1053, 2055, 1927, 4031}
# connectorx reports a lost connection in words, without a MySQL error code
_TRANSIENT_PATTERNS = (
    "bytes remaining on stream",
    "lost connection",
    "server has gone away",
    "broken pipe",
    "connection reset",
    "connection refused by server",
)
_CODE_RE = re.compile(r"ERROR (\d{4})")


@dataclass
class _Plan:
    """How one requested column is selected and converted."""

    name: str
    select: str
    target: SqlType
    ref: ColumnRef
    wire: str = "plain"
    zero_dates: list[int] = field(default_factory=lambda: [0])


def parse_dsn(dsn: str) -> dict[str, Any]:
    """pymysql connect() arguments for a ``mysql://user:pass@host:port/db`` DSN."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise ExtractError(
            f"{mask_dsn(dsn)} is not a mysql:// DSN.", hint="Use mysql://user:password@host:3306/database."
        )
    args: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": unquote(parts.path.lstrip("/")) or None,
    }
    return args


class MySQLSource(Source):
    """A MySQL or MariaDB server reached through a ``mysql://`` DSN; a schema is a database."""

    ENGINE = "mysql"
    DIALECT = "mysql"
    DEFAULT_SCHEMA = None
    SUPPORTS_SNAPSHOT = False
    SUPPORTS_CTID = False

    def __init__(self, name: str, dsn: str, *, connect_timeout: int = 10):
        super().__init__(name, dsn)
        self.connect_timeout = connect_timeout
        self._conn: pymysql.connections.Connection[Any] | None = None
        self._mariadb: bool | None = None

    PLACEHOLDER = "{{?}}"

    def default_schema(self) -> str | None:
        """The database the DSN names: a table written without a schema lives there."""
        return self.database

    @property
    def database(self) -> str | None:
        return unquote(urlsplit(self.dsn).path.lstrip("/")) or None

    def row_estimate(self, schema: str, table: str) -> int | None:
        """``information_schema.TABLES.TABLE_ROWS``, without reflecting the columns."""
        return self._table_rows(schema, table)

    def quote(self, identifier: str) -> str:
        """Quote one identifier with backticks (doubling embedded backticks)."""
        return "`" + identifier.replace("`", "``") + "`"

    def __enter__(self) -> Self:
        return self

    # ------------------------------------------------------------------ connections

    def _connect(self, **extra: Any) -> pymysql.connections.Connection[Any]:
        args = parse_dsn(self.dsn)
        try:
            return pymysql.connect(
                **args,
                charset="utf8mb4",
                autocommit=True,
                connect_timeout=self.connect_timeout,
                init_command="SET time_zone = '+00:00'",
                **extra,
            )
        except pymysql.Error as exc:
            raise self._connect_error(exc) from None

    @property
    def conn(self) -> pymysql.connections.Connection[Any]:
        """The catalog connection, opened on first use and reopened after a loss."""
        if self._conn is None or not self._conn.open:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        """Close the catalog connection."""
        if self._conn is not None:
            with suppress(pymysql.Error):
                self._conn.close()
            self._conn = None

    def _connect_error(self, exc: BaseException) -> ConveyorError:
        code = _error_code(exc)
        text = scrub_dsn(_error_text(exc), self.dsn)
        password = parse_dsn(self.dsn)["password"]
        if password:
            text = text.replace(password, "***")
        message = f'cannot connect to source "{self.name}" at {mask_dsn(self.dsn)}: {text}'
        if code in _TRANSIENT_CODES:
            return TransientError(message)
        return ExtractError(message, hint="Check the host, port, user, password and database in the DSN.")

    def translate(self, exc: BaseException, statement: str | None = None) -> ConveyorError:
        """Turn a driver exception into ``TransientError`` or ``ExtractError`` (password scrubbed)."""
        if isinstance(exc, ConveyorError):
            return exc
        text = scrub_dsn(_error_text(exc), self.dsn)
        where = f" while running: {scrub_dsn(statement, self.dsn)}" if statement else ""
        message = f'source "{self.name}" ({mask_dsn(self.dsn)}) failed{where}: {text}'
        lowered = text.lower()
        if _error_code(exc) in _TRANSIENT_CODES or any(p in lowered for p in _TRANSIENT_PATTERNS):
            return TransientError(message)
        return ExtractError(message)

    @contextmanager
    def _errors(self, statement: str | None = None) -> Iterator[None]:
        try:
            yield
        except ConveyorError:
            raise
        except BaseException as exc:
            # connectorx reports bad values as a Rust panic (a BaseException)
            if isinstance(exc, pymysql.Error | RuntimeError) or type(exc).__name__ == "PanicException":
                raise self.translate(exc, statement) from None
            raise

    def _query(self, statement: str, params: tuple[object, ...] | None = None) -> list[tuple[Any, ...]]:
        with self._errors(statement), self.conn.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())

    @property
    def is_mariadb(self) -> bool:
        """True when the server is MariaDB (JSON is a checked longtext there)."""
        if self._mariadb is None:
            self._mariadb = "mariadb" in str(self._query("SELECT VERSION()")[0][0]).lower()
        return self._mariadb

    # ------------------------------------------------------------------ catalog

    def list_tables(self) -> list[tuple[str, str]]:
        """The tables and views of the DSN's database, or of every non-system database when it names none."""
        if self.database:
            rows = self._query(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY 1, 2",
                (self.database,),
            )
            return [(str(s), str(t)) for s, t in rows]
        placeholders = ", ".join(["%s"] * len(SYSTEM_SCHEMAS))
        rows = self._query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA NOT IN ({placeholders}) ORDER BY 1, 2",
            SYSTEM_SCHEMAS,
        )
        return [(str(s), str(t)) for s, t in rows]

    def _table_rows(self, schema: str, table: str) -> int | None:
        rows = self._query(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (schema, table),
        )
        if not rows:
            known = [f"{s}.{t}" for s, t in self.list_tables()]
            raise missing_table_error(self.name, schema, table, known)
        return None if rows[0][0] is None else int(rows[0][0])

    def my_columns(self, schema: str, table: str) -> list[MyColumn]:
        """The table's columns as information_schema describes them."""
        self._table_rows(schema, table)
        rows = self._query(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE = 'NO', NUMERIC_PRECISION, NUMERIC_SCALE, "
            "COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
            "ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        json_columns = self._json_columns(schema, table)
        return [
            MyColumn(str(n), str(d), str(c), bool(nn), p, s, str(n) in json_columns, str(note or "") or None)
            for n, d, c, nn, p, s, note in rows
        ]

    def _json_columns(self, schema: str, table: str) -> set[str]:
        # MariaDB's JSON is an alias of LONGTEXT with a CHECK (json_valid(`col`)) constraint
        if not self.is_mariadb:
            return set()
        rows = self._query(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
            (schema, table),
        )
        found = set()
        for (clause,) in rows:
            match = re.fullmatch(r"json_valid\(`((?:[^`]|``)+)`\)", str(clause).strip())
            if match:
                found.add(match.group(1).replace("``", "`"))
        return found

    def column_names(self, schema: str, table: str) -> list[str]:
        return [c.name for c in self.my_columns(schema, table)]

    def describe(self, schema: str, table: str) -> TableInfo:
        """Reflect columns, keys and ``information_schema.TABLES.TABLE_ROWS``.

        A column whose type has no exact design type has ``type`` None and a ``text_form``
        (spatial types: WKT; others: the server's ``CAST(... AS CHAR)``).
        """
        estimate = self._table_rows(schema, table)
        columns = [column_info(col, self.zero_dates) for col in self.my_columns(schema, table)]
        primary, unique = self._keys(schema, table)
        return TableInfo(schema, table, tuple(columns), primary, unique, estimate, self._table_comment(schema, table))

    def _table_comment(self, schema: str, table: str) -> str | None:
        rows = self._query(
            "SELECT TABLE_COMMENT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND TABLE_TYPE <> 'VIEW'",
            (schema, table),
        )
        return (str(rows[0][0] or "") or None) if rows else None

    def _keys(self, schema: str, table: str) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
        rows = self._query(
            "SELECT tc.CONSTRAINT_TYPE, tc.CONSTRAINT_NAME, k.COLUMN_NAME "
            "FROM information_schema.TABLE_CONSTRAINTS tc "
            "JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA "
            " AND k.TABLE_NAME = tc.TABLE_NAME AND k.CONSTRAINT_NAME = tc.CONSTRAINT_NAME "
            "WHERE tc.TABLE_SCHEMA = %s AND tc.TABLE_NAME = %s AND tc.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'UNIQUE') "
            "ORDER BY tc.CONSTRAINT_TYPE <> 'PRIMARY KEY', tc.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            (schema, table),
        )
        primary: list[str] = []
        unique: dict[str, list[str]] = {}
        for kind, name, column in rows:
            if kind == "PRIMARY KEY":
                primary.append(str(column))
            else:
                unique.setdefault(str(name), []).append(str(column))
        return tuple(primary), tuple(tuple(cols) for cols in unique.values())

    # ------------------------------------------------------------------ reading

    def _plan(self, request: ReadRequest) -> list[_Plan]:
        by_name = {c.name: c for c in self.my_columns(request.schema, request.table)}
        plans = []
        for name, target in request.columns:
            col = by_name.get(name)
            if col is None:
                raise missing_column_error(self.name, request.schema, request.table, name, by_name)
            plans.append(self._plan_column(request, col, target))
        return plans

    def read_verdict(self, column: ColumnInfo, target: SqlType) -> Verdict:
        """The generic verdict, plus the server's renderings: any column reads as ``text``
        (spatial types as WKT), a column without a design type as ``bytes`` (its stored
        bytes), and MySQL's ``BOOL`` (``tinyint(1)``) as the number it is."""
        if target == TEXT:
            return "same" if column.type in (TEXT, None) else "widening"
        if column.type is None:
            return "widening" if target == SqlType("bytes") else "mismatch"
        if column.type == SqlType("boolean") and column.native_type.lower() == "tinyint(1)":
            return "same" if target == column.type else read_verdict(SqlType("tinyint"), target)
        return super().read_verdict(column, target)

    def _plan_column(self, request: ReadRequest, col: MyColumn, target: SqlType) -> _Plan:
        ref = ColumnRef(self.name, request.schema, request.table, col.name, col.column_type)
        quoted = self.quote(col.name)
        data_type = col.data_type.lower()
        native = design_type(col)
        refuse(self.read_verdict(column_info(col), target), ref, target, mapped=native is not None)
        if target.name == "text" and data_type in SPATIAL_TYPES:
            return _Plan(col.name, f"ST_AsText({quoted}) AS {quoted}", target, ref)
        if target.name == "text" and (native is None or native.name not in ("text", "json")):
            # the server's own rendering, in utf8mb4
            return _Plan(col.name, f"CAST({quoted} AS CHAR) AS {quoted}", target, ref)
        if target.name == "bytes" and native is None:
            # the server's own bytes (e.g. a geometry's SRID + WKB)
            return _Plan(col.name, f"CAST({quoted} AS BINARY) AS {quoted}", target, ref)
        wire = "plain"
        select = quoted
        if data_type in ("decimal", "numeric") and target.name == "decimal" and _exact_in_connectorx(col):
            pass  # connectorx's decimal(38,10) holds every value; the cast to the target checks it
        elif data_type in ("decimal", "numeric", "uuid", "json"):
            select = f"CAST({quoted} AS CHAR)"
        elif data_type == "date":
            select, wire = f"{quoted} + 0", "date_number"
        elif data_type in ("datetime", "timestamp"):
            select, wire = f"CAST({quoted} AS CHAR)", data_type
        elif data_type == "time":
            select, wire = f"CAST(TIME_TO_SEC({quoted}) * 1000000 AS SIGNED)", "time"
        return _Plan(col.name, f"{select} AS {quoted}", target, ref, wire)

    def build_sql(self, request: ReadRequest, plans: list[_Plan]) -> str:
        """The SELECT for a request with ``%s`` parameters inlined as escaped literals.

        connectorx takes no parameters; pymysql escapes them (``%%`` is a literal ``%``
        when there are params).
        """
        items = ", ".join(p.select for p in plans) or "NULL"
        text = f"SELECT {items} FROM {self.quote(request.schema)}.{self.quote(request.table)}"
        if request.where:
            text += f" WHERE {self.inline(request.where, request.params)}"
        if request.order_by:
            text += " ORDER BY " + ", ".join(self.quote(c) for c in request.order_by)
        return text

    def read(self, request: ReadRequest, *, snapshot: str | None = None) -> Iterator[pa.RecordBatch]:
        """Stream the rows as batches of ``request.batch_rows`` rows with the requested schema.

        Each read is one statement on one connection, so it sees one consistent InnoDB
        snapshot; separate reads (partitions) see separate snapshots.
        """
        plans = self._plan(request)
        statement = self.build_sql(request, plans)
        schema = request.arrow_schema
        try:
            raw = self._stream(statement, request.batch_rows, request.buffer_bytes)
            converted = (self._convert(batch, plans, schema) for batch in raw)
            yield from rebatch(converted, schema, request.batch_rows)
        finally:
            for plan in plans:
                if plan.zero_dates[0]:
                    self.notice_zero_dates(plan.ref, plan.zero_dates[0])

    def notice_zero_dates(self, ref: ColumnRef, count: int) -> None:
        """Log and keep (for the run's events and the manifest) the zero dates a read made NULL."""
        text = f"{ref}: read {count} zero date(s) ('0000-00-00' or with a zero month or day) as NULL"
        log.warning("%s", text)
        self.notices.append(text)

    def connectorx_url(self, relay_port: int | None = None) -> str:
        """The DSN as connectorx wants it: TCP only (never a socket as another user), to a
        local relay's port instead of the server when one is given."""
        parts = urlsplit(self.dsn)
        query = dict(parse_qsl(parts.query))
        query.setdefault("prefer_socket", "false")
        netloc = parts.netloc
        if relay_port is not None:
            netloc = netloc.rpartition("@")[0] + "@" if "@" in netloc else ""
            netloc += f"127.0.0.1:{relay_port}"
        return urlunsplit(("mysql", netloc, parts.path, urlencode(query), ""))

    def _throttle(self, buffer_bytes: int) -> Throttle | None:
        """A relay to the server that holds connectorx to ``buffer_bytes`` of read-ahead.

        None (a direct read) when the DSN asks for TLS: the relay would change the host name
        the server's certificate is checked against.
        """
        parts = urlsplit(self.dsn)
        if any(key.lower().startswith(("ssl", "require_ssl", "verify")) for key, _ in parse_qsl(parts.query)):
            return None
        args = parse_dsn(self.dsn)
        return Throttle(args["host"], args["port"], buffer_bytes, connect_timeout=self.connect_timeout)

    def _stream(self, statement: str, batch_rows: int, buffer_bytes: int) -> Iterator[pa.RecordBatch]:
        import connectorx

        # connectorx cannot cancel: a cancelled run finds the statement by this tag and kills it
        tag = f"/* conveyor {uuid.uuid4().hex} */"
        throttle = self._throttle(buffer_bytes)
        url = self.connectorx_url(None if throttle is None else throttle.port)
        with (
            throttle or nullcontext(),
            cancel.watching(lambda: self.kill_query(tag)),
            self._errors(statement),
        ):
            reader = connectorx.read_sql(
                url,
                f"{statement} {tag}",
                return_type="arrow_stream",
                batch_size=batch_rows,
                pre_execution_query=list(SESSION_SETTINGS),
            )
            while True:
                if throttle is not None:
                    throttle.begin_wait()
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                if throttle is not None:
                    throttle.end_wait(batch)
                yield batch

    def kill_query(self, tag: str) -> None:
        """``KILL QUERY`` the statements whose text holds ``tag``, from a connection of their own."""
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
                    (f"%{tag}%",),
                )
                for (session,) in cur.fetchall():
                    cur.execute(f"KILL QUERY {int(session)}")
        finally:
            conn.close()

    def _convert(self, batch: pa.RecordBatch, plans: list[_Plan], schema: pa.Schema) -> pa.RecordBatch:
        arrays = []
        for i, plan in enumerate(plans):
            arr = batch.column(i)
            if plan.wire == "date_number":
                arr = self._date_number(arr, plan)
            elif plan.wire in ("date", "datetime", "timestamp"):
                arr = self._temporal(arr, plan)
            elif plan.wire == "time":
                arr = time_from_micros(arr, plan.ref)
            arrays.append(convert(arr, plan.target, plan.ref))
        return assemble(arrays, schema)

    def _date_number(self, arr: pa.Array, plan: _Plan) -> pa.Array:
        dates, zeros, shown = date_from_number(arr, plan.ref)
        if zeros:
            self._zero_dates(zeros, plan, shown)
        return dates

    def _zero_dates(self, count: int, plan: _Plan, shown: str) -> None:
        """Count (zero_dates: null) or refuse (zero_dates: error) the zero dates of one batch."""
        if self.zero_dates == "error":
            raise ExtractError(
                f'{plan.ref} holds the zero date "{shown}", which is not a date (zero_dates: error).',
                hint=f'Set zero_dates: null on source "{self.name}" to read zero dates as NULL, or filter them out '
                "with the design's `condition`.",
            )
        plan.zero_dates[0] += count

    def _temporal(self, arr: pa.Array, plan: _Plan) -> pa.Array:
        arr = arr.cast(pa.string())
        month = pc.utf8_slice_codeunits(arr, 5, 7)
        day = pc.utf8_slice_codeunits(arr, 8, 10)
        zero = pc.or_kleene(pc.equal(month, "00"), pc.equal(day, "00"))
        zeros = pc.sum(pc.cast(zero, pa.int64())).as_py() or 0
        if zeros:
            self._zero_dates(zeros, plan, pc.filter(arr, zero)[0].as_py())
            arr = pc.if_else(zero, pa.scalar(None, pa.string()), arr)
        wire_type = pa.date32() if plan.wire == "date" else pa.timestamp("us")
        parsed = _parse(arr, wire_type, plan.ref)
        if plan.wire == "timestamp":
            # the session time zone is UTC, so the text is the UTC instant
            parsed = parsed.cast(pa.timestamp("us", tz="UTC"))
        return parsed

    # ------------------------------------------------------------------ splits

    def min_max(
        self, schema: str, table: str, column: str, where: str | None = None, params: tuple[object, ...] = ()
    ) -> tuple[Any, Any]:
        """``(min, max)`` of a column, optionally filtered (``where`` with ``%s`` params)."""
        col = self.quote(column)
        text = f"SELECT MIN({col}), MAX({col}) FROM {self.quote(schema)}.{self.quote(table)}"
        if where:
            text += f" WHERE {self.inline(where, params)}"
        rows = self._query(text, None)
        return rows[0][0], rows[0][1]

    def quantiles(self, schema: str, table: str, column: str, n: int) -> list[Any]:
        """Up to ``n - 1`` distinct cut points splitting the column into ``n`` similar parts.

        Uses ``NTILE(n)`` over the non-NULL values (one sort of the column); use with
        :func:`conveyor.sources.partition.range_filters` to build partition filters.
        """
        if n < 2:
            return []
        col = self.quote(column)
        text = (
            f"SELECT MIN(v) FROM (SELECT {col} AS v, NTILE({int(n)}) OVER (ORDER BY {col}) AS bucket "
            f"FROM {self.quote(schema)}.{self.quote(table)} WHERE {col} IS NOT NULL) AS tiles "
            "GROUP BY bucket ORDER BY bucket"
        )
        rows = self._query(text)
        return distinct_sorted(row[0] for row in rows[1:])

    def literal(self, value: object) -> str:
        """``value`` as an escaped SQL literal (for building filters outside ``params``)."""
        return str(self.conn.escape(value))


def _parse(arr: pa.Array, wire_type: pa.DataType, ref: ColumnRef) -> pa.Array:
    try:
        return arr.cast(wire_type)
    except pa.ArrowInvalid:
        for value in arr.to_pylist():
            if value is None:
                continue
            try:
                pa.array([value]).cast(wire_type)
            except pa.ArrowInvalid:
                raise ExtractError(
                    f'{ref} holds "{value}", which is not a valid date or time.',
                    hint="Declare the column as `type: text` in the design to read it as written.",
                ) from None
        raise


def _exact_in_connectorx(col: MyColumn) -> bool:
    """Whether connectorx reads the DECIMAL column exactly: it parses a 28-digit decimal and
    rescales it to ``decimal(38,10)``, so at most 10 digits after the point and 18 before."""
    if col.precision is None or col.scale is None:
        return False
    return col.scale <= 10 and col.precision - col.scale <= 18


def _error_code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.Error) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    match = _CODE_RE.search(str(exc))
    return int(match.group(1)) if match else None


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, pymysql.Error) and len(exc.args) >= 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    return str(exc).strip()
