"""MariaDB/MySQL upstream: the type vocabulary and the driver-side table operations (pymysql, UTC)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from hypothesis import strategies as st

from .harness import Col, Rows, Table
from .kinds import Kind, dates, decimals, floats32, floats64, ints, json_texts, texts, times, timestamps

ENUM = "enum('happy', 'sad', 'ünï 😀', 'a b')"
SET = "set('a', 'b', 'c')"


def _utc(value: Any) -> Any:
    """MySQL TIMESTAMP read in a UTC session: the naive value is the UTC instant."""
    return None if value is None else value.replace(tzinfo=UTC)


def _zero_is_null(value: Any) -> Any:
    """pymysql hands a zero date over as its text; docs/types.md: Conveyor reads it as NULL."""
    return None if isinstance(value, str) else value


def _int(label: str, low: int, high: int) -> Kind:
    return Kind(label, label, ints(low, high), "int")


def _decimal(p: int, s: int) -> Kind:
    return Kind(f"decimal({p},{s})", f"decimal({p},{s})", decimals(p, s), "decimal")


INSTANTS = st.datetimes(datetime(1970, 1, 1, 0, 0, 1), datetime(2038, 1, 19, 3, 14, 7, 999999))

VOCAB: list[Kind] = [
    _int("tinyint", -128, 127),
    _int("tinyint unsigned", 0, 255),
    _int("smallint", -(2**15), 2**15 - 1),
    _int("smallint unsigned", 0, 2**16 - 1),
    _int("mediumint", -(2**23), 2**23 - 1),
    _int("mediumint unsigned", 0, 2**24 - 1),
    _int("int", -(2**31), 2**31 - 1),
    _int("int unsigned", 0, 2**32 - 1),
    _int("bigint", -(2**63), 2**63 - 1),
    _int("bigint unsigned", 0, 2**64 - 1),
    *[_decimal(p, s) for p, s in [(1, 0), (5, 2), (10, 10), (18, 4), (20, 0), (38, 0), (38, 19)]],
    Kind("float", "float", floats32(special=False), "float32", upstream_read="CAST({c} AS DOUBLE)"),
    Kind("double", "double", floats64(special=False), "float64"),
    Kind("char(4)", "char(4)", texts(4), "char"),
    Kind("varchar(6)", "varchar(6)", texts(6), "text"),
    Kind("text", "text", texts(12), "text"),
    Kind("tinytext", "tinytext", texts(12), "text"),
    Kind("binary(4)", "binary(4)", st.binary(max_size=4) | st.sampled_from([b"\x00" * 4, b"a"]), "bytes"),
    Kind("varbinary(8)", "varbinary(8)", st.binary(max_size=8), "bytes"),
    Kind("blob", "blob", st.binary(max_size=12) | st.sampled_from([b"", b"\x00", b"\\"]), "bytes"),
    Kind("bit(10)", "bit(10)", ints(0, 1023), "bytes"),
    Kind(
        "tinyint(1)",
        "tinyint(1)",
        st.sampled_from([0, 1]),
        "bool",
        from_driver=lambda v: None if v is None else bool(v),
    ),
    Kind("date", "date", dates(date(1000, 1, 1)), "date"),
    Kind("time(6)", "time(6)", times(), "time"),
    Kind("datetime(6)", "datetime(6)", timestamps(datetime(1000, 1, 1)), "ts"),
    Kind("timestamp(6)", "timestamp(6) NULL", INSTANTS, "tstz", from_driver=_utc),
    Kind("year", "year", st.sampled_from([1901, 2155, 0]) | st.integers(1901, 2155), "int"),
    # mariadb refuses UUIDs whose variant bits are not RFC 4122's
    Kind("uuid", "uuid", (st.uuids(version=4) | st.sampled_from([uuid.UUID(int=0)])).map(str), "uuid"),
    Kind("json", "json", json_texts(), "json"),
    Kind("enum", ENUM, st.sampled_from(["happy", "sad", "ünï 😀", "a b"]), "text"),
    Kind("set", SET, st.sampled_from(["", "a", "a,c", "a,b,c"]), "text"),
]

#: zero dates: read as NULL (docs/types.md), even in NOT NULL columns (issue 10 item 10)
ZERO_DATES: list[Kind] = [
    Kind(
        "date zero",
        "date",
        st.sampled_from(["0000-00-00", "2024-00-10", "2024-01-00"]),
        "date",
        from_driver=_zero_is_null,
    ),
    Kind("datetime zero", "datetime(6)", st.sampled_from(["0000-00-00 00:00:00"]), "ts", from_driver=_zero_is_null),
]


def _unmapped(ddl: str, samples: list[str], bind: str, read: str) -> Kind:
    """A type with no design mapping; its value is the server's own text form."""
    return Kind(ddl, ddl, st.sampled_from(samples), "text", bind, upstream_read=read)


#: types docs/types.md lists as unmapped (bootstrap must still keep the rest of the table: issue 10 item 9)
UNMAPPED: list[Kind] = [
    _unmapped("geometry", ["POINT(1 2)", "LINESTRING(0 0,1 1)"], "ST_GeomFromText(%s)", "ST_AsText({c})"),
    _unmapped("point", ["POINT(-1.5 0)"], "ST_GeomFromText(%s)", "ST_AsText({c})"),
    _unmapped("inet6", ["::1", "2001:db8::1"], "%s", "CAST({c} AS CHAR)"),
    _unmapped("inet4", ["10.0.0.1", "0.0.0.0"], "%s", "CAST({c} AS CHAR)"),
]


def create(conn: Any, table: Table) -> None:
    """Create the table (``id int PRIMARY KEY``) and insert its rows through pymysql."""
    columns = ", ".join(f"{bq(c.name)} {c.kind.ddl}{' NOT NULL' if c.not_null else ''}" for c in table.cols)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {bq(table.name)} (id int PRIMARY KEY, {columns}) DEFAULT CHARSET = utf8mb4")
    insert(conn, table.name, table.cols, list(zip(table.ids, table.rows, strict=True)))


def insert(conn: Any, name: str, cols: Sequence[Col], rows: Sequence[tuple[int, list[Any]]]) -> None:
    if not rows:
        return
    names = ", ".join(["id", *(bq(c.name) for c in cols)])
    marks = "(" + ", ".join(["%s", *(c.kind.bind for c in cols)]) + ")"
    params = list(itertools.chain.from_iterable((i, *values) for i, values in rows))
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {bq(name)} ({names}) VALUES {', '.join([marks] * len(rows))}", params)


def read(conn: Any, name: str, cols: Sequence[Col]) -> Rows:
    exprs = ["id", *(c.kind.upstream_read.format(c=bq(c.name)) for c in cols)]
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(exprs)} FROM {bq(name)} ORDER BY id")
        rows = cur.fetchall()
    fixes = [c.kind.from_driver for c in cols]
    return [(r[0], *(f(v) if f else v for f, v in zip(fixes, r[1:], strict=True))) for r in rows]


def drop(conn: Any, name: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {bq(name)}")


def bq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
