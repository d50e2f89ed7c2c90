"""SQLite as an upstream source.

SQLite stores values by storage class, not by declared type, so conversion follows the
design's type and checks every value:
- ``decimal(p,s)``: integers and text convert exactly. REAL values (what SQLite keeps
  for a ``NUMERIC`` column) convert through their shortest round-trip representation,
  and any value with more digits than the scale is an error, never a silent rounding.
- ``timestamptz``: ISO-8601 text with an offset becomes a UTC instant; text without an
  offset is taken as UTC.
- ``boolean``: only 0 and 1 are accepted.
"""

from __future__ import annotations

import math
import re
import sqlite3
import struct
import uuid
from collections.abc import Callable, Iterator
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from conveyor.design.types import SqlType, parse_type
from conveyor.errors import ExtractError, did_you_mean
from conveyor.sources.base import ColumnInfo, ReadRequest, Source, TableInfo
from conveyor.sources.partition import distinct_sorted
from conveyor.sources.typemap import is_json
from conveyor.sources.verdict import (
    STRING_TYPES,
    ColumnRef,
    Verdict,
    missing_column_error,
    read_verdict,
    unsupported_override_error,
)

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

_DECLARED = [
    (re.compile(r"^(tiny|small|medium|big)?int(eger)?( unsigned)?$"), "bigint"),
    (re.compile(r"^(bool|boolean)$"), "boolean"),
    (re.compile(r"^(real|double|double precision|float)$"), "double"),
    (re.compile(r"^(text|clob|(var)?char|character|string|n?varchar)"), "text"),
    (re.compile(r"^(blob|binary|varbinary|bytea)$"), "bytes"),
    (re.compile(r"^(datetime|timestamp)$"), "timestamp"),
    (re.compile(r"^(timestamptz|timestamp with time zone)$"), "timestamptz"),
    (re.compile(r"^date$"), "date"),
    (re.compile(r"^time$"), "time"),
    (re.compile(r"^uuid$"), "uuid"),
    (re.compile(r"^jsonb?$"), "json"),
]


# storage classes of sqlite3's Python values
_CLASSES = {int: "integer", float: "real", str: "text", bytes: "blob"}
#: the text form bootstrap reads a column of a declared type without an exact design type as
TEXT_FORM = "the stored value as text (integers in decimal, reals as their shortest round-trip text)"
_ORDER = ("same", "widening", "narrowing")


def storage_classes(native: SqlType | None) -> frozenset[str]:
    """The storage classes a column holds, by its declared type's design type (its affinity)."""
    if native is None:
        return frozenset({"integer", "real", "text"})
    if native.name in ("boolean", "tinyint", "smallint", "integer", "bigint"):
        return frozenset({"integer"})
    if native.name in ("double", "real"):
        return frozenset({"real"})
    if native.name == "decimal":
        return frozenset({"integer", "real"})
    if native.name == "bytes":
        return frozenset({"blob"})
    if native.name in STRING_TYPES:
        return frozenset({"text"})
    # NUMERIC affinity (DATE, UUID, JSON ...): text that looks like a number is stored as one
    return frozenset({"text", "integer", "real"})


def storage_verdict(storage: str, target: SqlType) -> Verdict:
    """Whether a value stored in ``storage`` is read as ``target`` (see :func:`_convert`)."""
    name = target.name
    if target.is_array or (storage == "blob" and name not in ("bytes", "uuid")):
        return "mismatch"
    if name in STRING_TYPES:
        return "narrowing" if target.precision is not None else "widening"  # rendered as text
    if storage == "text":
        return "widening" if name == "bytes" else "narrowing" if name in _PARSED else "mismatch"
    if storage == "blob":
        return "widening" if name == "bytes" else "narrowing"
    if storage == "real":
        if name == "double":
            return "widening"
        # decimals via the shortest round-trip text; reals only when float32 holds the value exactly
        return "narrowing" if name in ("decimal", "real") else "mismatch"
    if name in _PARSED - {"decimal"} or name == "bytes":
        return "mismatch"
    return "narrowing" if name == "boolean" else read_verdict(SqlType("bigint"), target)


_PARSED = frozenset({"decimal", "date", "time", "timestamp", "timestamptz", "uuid", "json"})


def column_verdict(column: ColumnInfo, target: SqlType) -> Verdict:
    """How a SQLite column reads as ``target``: the worst verdict over the storage classes it holds."""
    if column.type == target or (column.type is None and target == SqlType("text")):
        return "same" if column.type is not None or column.text_form else "narrowing"
    native = column.type
    if native is not None and native.name not in STRING_TYPES and target.name not in STRING_TYPES:
        # a typed column reads as what its type allows (a DATE column is no decimal), plus
        # what parsing its text or float makes exact
        extra = {native.name, target.name} <= {"date", "timestamp", "timestamptz"} or (native.name, target.name) in (
            ("double", "decimal"),
            ("double", "real"),
            ("bytes", "uuid"),
        )
        if read_verdict(native, target) == "mismatch" and not extra:
            return "mismatch"
    verdicts = {storage_verdict(storage, target) for storage in storage_classes(native)}
    if verdicts == {"mismatch"}:
        return "mismatch"
    if "mismatch" in verdicts:
        return "narrowing"  # values of the other storage classes are read, these fail
    return max(verdicts, key=_ORDER.index)


def map_declared_type(declared: str) -> SqlType:
    """Map a SQLite declared type (free text) to a design type."""
    text = declared.strip().lower()
    numeric = re.match(r"^(numeric|decimal)\s*\(\s*(\d+)\s*(?:,\s*(\d+))?\s*\)$", text)
    if numeric:
        return SqlType("decimal", int(numeric.group(2)), int(numeric.group(3) or 0))
    for pattern, name in _DECLARED:
        if pattern.match(text):
            return parse_type(name)
    if text in ("", "numeric", "decimal"):
        raise ValueError(f'declared type "{declared}" gives no exact type')
    raise ValueError(f'declared type "{declared}" has no mapping')


class SqliteSource(Source):
    """A SQLite database file."""

    ENGINE = "sqlite"
    DIALECT = "sqlite"
    DEFAULT_SCHEMA = "main"
    SUPPORTS_SNAPSHOT = False
    SUPPORTS_CTID = False
    PLACEHOLDER = "?"
    CURSOR_BOUND_EXACT = False

    def __init__(self, name: str, dsn: str):
        super().__init__(name, dsn)
        self.path = Path(dsn.removeprefix("sqlite:///").removeprefix("sqlite://"))

    def connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise ExtractError(
                f'the SQLite database of source "{self.name}" does not exist: {self.path}.',
                hint="Check the source's dsn in conveyor.yaml.",
            )
        # read-only URI: an extract must never change its source
        uri = self.path.resolve().as_uri() + "?mode=ro"  # as_uri escapes '#', '?' and '%'
        con = sqlite3.connect(uri, uri=True, check_same_thread=False)
        con.text_factory = str
        return con

    def list_tables(self) -> list[tuple[str, str]]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()
        return [("main", r[0]) for r in rows]

    def describe(self, schema: str, table: str) -> TableInfo:
        """Reflect columns (by declared type, see :func:`map_declared_type`), keys and the row count.

        A declared type without an exact design type gives ``type`` None; ``NUMERIC`` or
        ``DECIMAL`` without a precision and no declared type at all get a ``text_form``
        (their values are numbers or text), any other (``GEOMETRY``, ``MONEY`` ...) none.
        """
        with self.connect() as con:
            columns, pk = self._columns(con, schema, table)
            unique = self._unique(con, schema, table)
            count = con.execute(f"SELECT count(*) FROM {self.quote(schema)}.{self.quote(table)}").fetchone()[0]
        return TableInfo(schema, table, tuple(columns), tuple(n for _, n in sorted(pk)), unique, count)

    def _columns(
        self, con: sqlite3.Connection, schema: str, table: str
    ) -> tuple[list[ColumnInfo], list[tuple[int, str]]]:
        info = con.execute(f"PRAGMA {self.quote(schema)}.table_info({self.quote(table)})").fetchall()
        if not info:
            raise ExtractError(f'table "{schema}.{table}" does not exist in source "{self.name}".')
        columns, pk = [], []
        for _cid, name, declared, notnull, _default, pk_pos in info:
            try:
                sql_type: SqlType | None = map_declared_type(declared)
                text_form = None
            except ValueError:
                plain = declared.strip().lower() in ("", "numeric", "decimal")
                sql_type, text_form = None, TEXT_FORM if plain else None
            columns.append(ColumnInfo(name, sql_type, declared, bool(notnull) or pk_pos > 0, text_form=text_form))
            if pk_pos:
                pk.append((pk_pos, name))
        return columns, pk

    def read_verdict(self, column: ColumnInfo, target: SqlType) -> Verdict:
        """By storage class: SQLite keeps each value in the class its declared type's affinity picks."""
        return column_verdict(column, target)

    def _check(self, con: sqlite3.Connection, request: ReadRequest) -> None:
        """Refuse a column that cannot be read as its design type, before reading a row."""
        columns = {self.column_key(c.name): c for c in self._columns(con, request.schema, request.table)[0]}
        for name, target in request.columns:
            column = columns.get(self.column_key(name))
            if column is None:
                raise missing_column_error(self.name, request.schema, request.table, name, columns)
            if self.read_verdict(column, target) == "mismatch":
                ref = ColumnRef(self.name, request.schema, request.table, name, column.native_type or "no type")
                raise unsupported_override_error(ref, target)

    def cursor_bound(self, column: str, sql_type: SqlType) -> str:
        """Dates and timestamps are text in SQLite: compare them as instants, not as text.

        Text compares by bytes, so ``11:00:01-01:00`` sorts before ``12:00:00+00:00`` although it is
        a second later, and ``.5`` before ``.500000``. SQLite's date functions normalise both sides
        to UTC, but keep only milliseconds: the bound lets a few rows below it through (never one
        above it), which the extract then drops (``CURSOR_BOUND_EXACT`` is False).
        """
        if sql_type.name not in ("date", "timestamp", "timestamptz"):
            return super().cursor_bound(column, sql_type)
        fmt = "'%Y-%m-%d'" if sql_type.name == "date" else "'%Y-%m-%d %H:%M:%f'"
        return f"strftime({fmt}, {self.quote(column)}) >= strftime({fmt}, ?)"

    def column_names(self, schema: str, table: str) -> list[str]:
        """Every column of the table (PRAGMA table_info), hidden and generated ones included.

        SQLite reads a double-quoted name that is no column as a string literal, so a read
        alone would load a misspelt column's own name into every row: check first.
        """
        try:
            with self.connect() as con:
                info = con.execute(f"PRAGMA {self.quote(schema)}.table_xinfo({self.quote(table)})").fetchall()
        except sqlite3.Error:
            info = []  # e.g. an unknown schema: the table does not exist either
        if not info:
            known = [f"{s}.{t}" for s, t in self.list_tables()]
            raise ExtractError(
                f'table "{schema}.{table}" does not exist in source "{self.name}".'
                + did_you_mean(f"{schema}.{table}", known),
                hint="Check the design's source_table (or its name).",
            )
        return [str(row[1]) for row in info]

    @staticmethod
    def column_key(name: str) -> str:
        # sqlite matches column names ignoring the case of ASCII letters only
        return name.translate(_ASCII_LOWER)

    def _unique(self, con: sqlite3.Connection, schema: str, table: str) -> tuple[tuple[str, ...], ...]:
        found = []
        for _seq, index, is_unique, origin, _partial in con.execute(
            f"PRAGMA {self.quote(schema)}.index_list({self.quote(table)})"
        ):
            if is_unique and origin == "u":
                cols = con.execute(f"PRAGMA {self.quote(schema)}.index_info({self.quote(index)})").fetchall()
                found.append(tuple(c[2] for c in cols))
        return tuple(found)

    def min_max(
        self, schema: str, table: str, column: str, where: str | None = None, params: tuple[object, ...] = ()
    ) -> tuple[Any, Any]:
        col = self.quote(column)
        sql = f"SELECT min({col}), max({col}) FROM {self.quote(schema)}.{self.quote(table)}"
        with self.connect() as con:
            low, high = con.execute(sql + (f" WHERE {where}" if where else ""), params).fetchone()
        return low, high

    def quantiles(self, schema: str, table: str, column: str, n: int) -> list[Any]:
        """Cut points by rank: the values at every n-th position of the sorted column."""
        col = self.quote(column)
        table_sql = f"{self.quote(schema)}.{self.quote(table)}"
        with self.connect() as con:
            total = con.execute(f"SELECT count({col}) FROM {table_sql}").fetchone()[0]
            cuts = []
            for offset in sorted({total * i // n for i in range(1, n)}) if total else []:
                row = con.execute(
                    f"SELECT {col} FROM {table_sql} WHERE {col} IS NOT NULL ORDER BY {col} LIMIT 1 OFFSET ?", (offset,)
                ).fetchone()
                if row is not None:  # the table may have shrunk since it was counted
                    cuts.append(row[0])
        return distinct_sorted(cuts)

    def select_sql(self, request: ReadRequest) -> str:
        columns = ", ".join(self.quote(name) for name, _ in request.columns)
        sql = f"SELECT {columns} FROM {self.quote(request.schema)}.{self.quote(request.table)}"
        if request.where:
            sql += f" WHERE {request.where}"
        if request.order_by:
            sql += " ORDER BY " + ", ".join(self.quote(c) for c in request.order_by)
        return sql

    def read(self, request: ReadRequest, *, snapshot: str | None = None) -> Iterator[pa.RecordBatch]:
        schema = request.arrow_schema
        converters = [_converter(name, t, f"{request.schema}.{request.table}") for name, t in request.columns]
        con = self.connect()
        try:
            self._check(con, request)
            cursor = con.execute(self.select_sql(request), request.params)
            while rows := cursor.fetchmany(request.batch_rows):
                columns = list(zip(*rows, strict=True))
                arrays = [convert(list(values)) for convert, values in zip(converters, columns, strict=True)]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        except sqlite3.Error as exc:
            raise ExtractError(
                f'reading {request.schema}.{request.table} from source "{self.name}" failed: {exc}.',
                hint=f"SQL: {self.select_sql(request)}",
            ) from None
        finally:
            con.close()


def _converter(column: str, sql_type: SqlType, table: str) -> Callable[[list[Any]], pa.Array]:
    """A function turning one column's Python values into an exact Arrow array."""
    target = sql_type.arrow
    where = f"{table}.{column}"

    def fail(detail: str) -> ExtractError:
        return ExtractError(
            f"{where} ({sql_type}): {detail}.", hint="Fix the upstream value or change the column's type in the design."
        )

    def convert(values: list[Any]) -> pa.Array:
        try:
            return _convert(values, sql_type, target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, ArithmeticError) as exc:
            raise fail(str(exc)) from None

    return convert


def _convert(values: list[Any], sql_type: SqlType, target: pa.DataType) -> pa.Array:
    name = sql_type.name
    if sql_type.is_array:
        raise ValueError("SQLite has no array type")
    if name == "decimal":
        decimals = [_decimal(v) for v in values]
        try:
            return pa.array(decimals, type=target)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            unfit = next((d for d in decimals if d is not None and not _fits(d, target)), None)
            if unfit is None:
                raise
            raise ValueError(f"the value {unfit} does not fit {sql_type} exactly") from None
    if name == "time":
        return pa.array([None if v is None else time.fromisoformat(_text(v)) for v in values], type=target)
    if name in ("date", "timestamp", "timestamptz"):
        texts = [None if v is None else _text(v) for v in values]
        if name == "timestamptz":
            texts = [t if t is None or _has_offset(t) else t + "+00:00" for t in texts]
        return pa.array(texts, type=pa.string()).cast(target)
    if name == "boolean":
        if any(v not in (0, 1, None) for v in values):
            bad = next(v for v in values if v not in (0, 1, None))
            raise ValueError(f"{bad!r} is not a boolean (expected 0 or 1)")
        return pa.array([None if v is None else bool(v) for v in values], type=target)
    if name == "uuid":
        return pa.array([None if v is None else _uuid(v) for v in values], type=pa.binary(16)).cast(target)
    if name in ("text", "varchar", "char"):
        texts = [_as_text(v) for v in values]
        if sql_type.precision is not None:
            bad = next((t for t in texts if t is not None and len(t) > sql_type.precision), None)
            if bad is not None:
                raise ValueError(f"{bad!r} is longer than {sql_type.precision} characters")
        return pa.array(texts, type=pa.string())
    if name == "json":
        texts = [_as_text(v) for v in values]  # a number stored as one is its JSON text
        bad = next((t for t in texts if t is not None and not is_json(t)), None)
        if bad is not None:
            raise ValueError(f"{bad!r} is not a JSON document")
        return pa.array(texts, type=pa.string()).cast(target)
    if name == "real":
        # a double that float32 cannot hold exactly would be rounded silently by pa.array
        bad = next((v for v in values if isinstance(v, float) and _float32(v) != v and v == v), None)
        if bad is not None:
            raise ValueError(f"{bad!r} has no exact real (float32) value")
    if pa.types.is_integer(target):
        bad = next((v for v in values if v is not None and (not isinstance(v, int) or isinstance(v, bool))), None)
        if bad is not None:
            raise ValueError(f"{bad!r} is stored as {type(bad).__name__}, not an integer")
    return pa.array(values, type=target)


def _as_text(value: Any) -> str | None:
    """The value as text: integers in decimal, reals as their shortest round-trip text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    raise ValueError(f"{value!r} is stored as {type(value).__name__}, not text")


def _float32(value: float) -> float:
    """``value`` through float32 (NaN for a finite value float32 cannot hold at all)."""
    try:
        return float(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:
        return math.nan


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        # repr() is the shortest text that round-trips the double; arrow rejects extra digits
        return Decimal(repr(value))
    return Decimal(value if isinstance(value, int) else str(value))


def _fits(value: Decimal, target: pa.Decimal128Type | pa.Decimal256Type) -> bool:
    """Whether a decimal is exactly representable with the target's precision and scale."""
    if not value.is_finite():
        return False
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > target.scale and value != value.quantize(Decimal(1).scaleb(-target.scale)):
        return False  # digits beyond the scale that are not zeros
    integer_digits = len(str(abs(int(value)))) if abs(value) >= 1 else 0
    return integer_digits <= target.precision - target.scale


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not ISO-8601 text")
    return value


def _has_offset(text: str) -> bool:
    return text.endswith("Z") or bool(re.search(r"[+-]\d\d:?\d\d$", text))


def _uuid(value: Any) -> bytes:
    if isinstance(value, bytes) and len(value) == 16:
        return value
    return uuid.UUID(str(value)).bytes
