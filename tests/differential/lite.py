"""SQLite upstream: declared types, values in the storage class each gets, and the sqlite3 reads.

SQLite keeps values by storage class, so the reference is what ``sqlite3`` returns,
brought to the exact value docs/types.md and ``conveyor/sources/sqlite.py`` promise for the
declared type (``from_driver``): ISO-8601 text parsed (text without an offset is UTC for
``timestamptz``), NUMERIC read back as INTEGER/REAL/TEXT turned into its exact Decimal
(a REAL through its shortest round-trip text), 0/1 booleans, UUIDs from text.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from .harness import Col, Rows, Table, dq
from .kinds import Kind, dates, decimals, floats64, instants, ints, json_texts, texts, times, timestamps, uuids


def _maybe(convert: Any) -> Any:
    return lambda v: None if v is None else convert(v)


def _number(value: Any) -> Decimal:
    return (
        Decimal(repr(value)) if isinstance(value, float) else Decimal(value if isinstance(value, int) else str(value))
    )


def _instant(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso_timestamp(value: datetime, sep: str, short: bool) -> str:
    text = value.isoformat(sep=sep)
    return text.rstrip("0").rstrip(".") if short and "." in text else text


def _iso_instant(value: datetime, style: str) -> str:
    text = value.isoformat()
    if style == "Z" and text.endswith("+00:00"):
        return text[:-6] + "Z"
    if style == "compact":
        return text[:-3] + text[-2:]
    if style == "naive-utc":
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    return text


def _decimal_kind(declared: str, p: int, s: int) -> Kind:
    """Values of at most 15 significant digits: SQLite's NUMERIC affinity keeps those exactly (as REAL or
    INTEGER) but turns longer ones into a rounded REAL ('99999999999999.9999' is read back as 10**14)."""
    values = decimals(min(p, 15), min(s, 15) if p > 15 else s).map(str)
    return Kind(declared, declared, values, "decimal", from_driver=_maybe(_number))


TIMESTAMPS = st.builds(_iso_timestamp, timestamps(), st.sampled_from([" ", "T"]), st.booleans())
INSTANTS = st.builds(_iso_instant, instants(), st.sampled_from(["offset", "Z", "compact", "naive-utc"]))
UUID_TEXT = st.builds(lambda u, upper: str(u).upper() if upper else str(u), uuids(), st.booleans())

VOCAB: list[Kind] = [
    Kind("INTEGER", "INTEGER", ints(-(2**63), 2**63 - 1), "int"),
    Kind("BIGINT", "BIGINT", ints(-(2**63), 2**63 - 1), "int"),
    Kind("SMALLINT", "SMALLINT", ints(-(2**15), 2**15 - 1), "int"),
    Kind("BOOLEAN", "BOOLEAN", st.sampled_from([0, 1]), "bool", from_driver=_maybe(bool)),
    # no NaN: SQLite stores it as NULL (which a NOT NULL column then refuses)
    Kind("REAL", "REAL", floats64().filter(lambda f: f == f), "float64"),
    Kind("DOUBLE", "DOUBLE", floats64().filter(lambda f: f == f), "float64"),
    Kind("TEXT", "TEXT", texts(12), "text"),
    Kind("VARCHAR(10)", "VARCHAR(10)", texts(10), "text"),
    Kind("CHAR(4)", "CHAR(4)", texts(4), "text"),
    Kind("CLOB", "CLOB", texts(12), "text"),
    Kind("BLOB", "BLOB", st.binary(max_size=12) | st.sampled_from([b"", b"\x00"]), "bytes"),
    _decimal_kind("NUMERIC(10,2)", 10, 2),
    _decimal_kind("DECIMAL(18,4)", 18, 4),
    _decimal_kind("NUMERIC(38,10)", 38, 10),
    _decimal_kind("NUMERIC(5,5)", 5, 5),
    Kind("DATE", "DATE", dates().map(date.isoformat), "date", from_driver=_maybe(date.fromisoformat)),
    Kind("TIME", "TIME", times().map(time.isoformat), "time", from_driver=_maybe(time.fromisoformat)),
    Kind("DATETIME", "DATETIME", TIMESTAMPS, "ts", from_driver=_maybe(datetime.fromisoformat)),
    Kind("TIMESTAMP", "TIMESTAMP", TIMESTAMPS, "ts", from_driver=_maybe(datetime.fromisoformat)),
    Kind("TIMESTAMPTZ", "TIMESTAMPTZ", INSTANTS, "tstz", from_driver=_maybe(_instant)),
    Kind("UUID", "UUID", UUID_TEXT, "uuid", from_driver=_maybe(uuid.UUID)),
    # not a bare number: see JSON_NUMBER
    Kind("JSON", "JSON", json_texts().filter(lambda t: not _is_number(t)), "json"),
]

#: a JSON document that is a bare number: "JSON" has NUMERIC affinity, so SQLite stores '0' as the integer 0
JSON_NUMBER = Kind("JSON number", "JSON", st.sampled_from(["0", "1.5", "-12", "1e3"]), "json", from_driver=_maybe(str))


def _is_number(text: str) -> bool:
    value = json.loads(text)
    return isinstance(value, int | float) and not isinstance(value, bool)


def connect(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def create(conn: sqlite3.Connection, table: Table) -> None:
    columns = ", ".join(f"{dq(c.name)} {c.kind.ddl}{' NOT NULL' if c.not_null else ''}" for c in table.cols)
    conn.execute(f"CREATE TABLE {dq(table.name)} (id INTEGER PRIMARY KEY, {columns})")
    insert(conn, table.name, table.cols, list(zip(table.ids, table.rows, strict=True)))


def insert(conn: sqlite3.Connection, name: str, cols: Sequence[Col], rows: Sequence[tuple[int, list[Any]]]) -> None:
    if not rows:
        return
    names = ", ".join(["id", *(dq(c.name) for c in cols)])
    marks = "(" + ", ".join(["?"] * (len(cols) + 1)) + ")"
    params = list(itertools.chain.from_iterable((i, *values) for i, values in rows))
    conn.execute(f"INSERT INTO {dq(name)} ({names}) VALUES {', '.join([marks] * len(rows))}", params)


def read(conn: sqlite3.Connection, name: str, cols: Sequence[Col]) -> Rows:
    names = ", ".join(["id", *(dq(c.name) for c in cols)])
    rows = conn.execute(f"SELECT {names} FROM {dq(name)} ORDER BY id").fetchall()
    fixes = [c.kind.from_driver for c in cols]
    return [(r[0], *(f(v) if f else v for f, v in zip(fixes, r[1:], strict=True))) for r in rows]
