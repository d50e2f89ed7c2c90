"""PostgreSQL upstream: the type vocabulary and the driver-side table operations."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from typing import Any

import psycopg
from hypothesis import strategies as st

from .harness import Col, Rows, Table, dq
from .kinds import (
    Kind,
    dates,
    decimals,
    floats32,
    floats64,
    instants,
    ints,
    json_texts,
    texts,
    times,
    timestamps,
    uuids,
)

ENUM_LABELS = ["happy", "sad", "ünï 😀", " ", "a'b", "NULL"]
SETUP = [
    "CREATE TYPE diff_mood AS ENUM ('happy', 'sad', 'ünï 😀', ' ', 'a''b', 'NULL')",
    "CREATE DOMAIN diff_amount AS numeric(12,2)",
]
DATE_PROBE = {"postgres": "({c} - DATE '1970-01-01')", "duckdb": "({c} - DATE '1970-01-01')"}


def bc_dates() -> st.SearchStrategy[str]:
    """Dates before year 1 (PostgreSQL goes back to 4713 BC), as PostgreSQL date literals."""
    return st.builds(
        lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d} BC",
        st.sampled_from([1, 4, 44, 4713]) | st.integers(1, 4713),
        st.integers(1, 12),
        st.integers(1, 28),
    )


def _numeric_kinds() -> list[Kind]:
    shapes = [(1, 0), (5, 2), (12, 2), (18, 0), (19, 4), (38, 0), (38, 10), (38, 38), (5, -2), (3, 5)]
    return [
        Kind(f"numeric({p},{s})", f"numeric({p},{s})", decimals(p, s), "decimal", f"%s::numeric({p},{s})")
        for p, s in shapes
    ]


def _array(label: str, element: Kind) -> Kind:
    values = st.lists(st.none() | element.values, max_size=4)
    return Kind(f"{label}[]", f"{element.ddl}[]", values, "array:" + element.key, f"%s::{element.ddl}[]")


TEXT = Kind("text", "text", texts(12), "text", "%s::text")
INTEGER = Kind("integer", "integer", ints(-(2**31), 2**31 - 1), "int", "%s::integer")

VOCAB: list[Kind] = [
    Kind("smallint", "smallint", ints(-(2**15), 2**15 - 1), "int", "%s::smallint"),
    INTEGER,
    Kind("bigint", "bigint", ints(-(2**63), 2**63 - 1), "int", "%s::bigint"),
    *_numeric_kinds(),
    Kind("numeric", "numeric", decimals(38, 9), "decimal", "%s::numeric"),
    Kind("domain numeric(12,2)", "diff_amount", decimals(12, 2), "decimal", "%s::diff_amount"),
    Kind("real", "real", floats32(), "float32", "%s::real"),
    Kind("double precision", "double precision", floats64(), "float64", "%s::double precision"),
    TEXT,
    Kind("varchar(5)", "varchar(5)", texts(5), "text", "%s::varchar(5)"),
    Kind("char(4)", "char(4)", texts(4), "char", "%s::char(4)"),
    Kind('"char"', '"char"', st.sampled_from(["a", "Z", " ", "0", "\\"]), "text", '%s::"char"'),
    Kind("boolean", "boolean", st.booleans(), "bool", "%s::boolean"),
    Kind("date", "date", dates(), "date", "%s::date"),
    Kind("date BC", "date", bc_dates(), "int", "%s::date", probe=DATE_PROBE),
    Kind("time", "time", times(), "time", "%s::time"),
    Kind("timestamp", "timestamp", timestamps(), "ts", "%s::timestamp"),
    Kind("timestamptz", "timestamptz", instants(), "tstz", "%s::timestamptz"),
    Kind("uuid", "uuid", uuids(), "uuid", "%s::uuid"),
    Kind("json", "json", json_texts(), "json", "%s::json", upstream_read="{c}::text"),
    Kind("jsonb", "jsonb", json_texts(), "json", "%s::jsonb", upstream_read="{c}::text"),
    Kind("bytea", "bytea", st.binary(max_size=12) | st.sampled_from([b"", b"\x00", b"\\x00", b"\xff"]), "bytes"),
    Kind("enum", "diff_mood", st.sampled_from(ENUM_LABELS), "text", "%s::diff_mood"),
    _array("integer", INTEGER),
    _array("text", TEXT),
    _array("numeric(10,2)", Kind("numeric(10,2)", "numeric(10,2)", decimals(10, 2), "decimal")),
    _array("timestamptz", Kind("timestamptz", "timestamptz", instants(), "tstz")),
    _array("boolean", Kind("boolean", "boolean", st.booleans(), "bool")),
]


def setup(conn: psycopg.Connection[Any]) -> None:
    """The session's shared upstream types (an enum, a domain)."""
    for statement in SETUP:
        with contextlib.suppress(psycopg.errors.DuplicateObject):
            conn.execute(statement.encode())


def create(conn: psycopg.Connection[Any], table: Table) -> None:
    """Create the table with ``id integer PRIMARY KEY`` and insert its rows through psycopg."""
    columns = ", ".join(f"{dq(c.name)} {c.kind.ddl}{' NOT NULL' if c.not_null else ''}" for c in table.cols)
    conn.execute(f"CREATE TABLE {dq(table.name)} (id integer PRIMARY KEY, {columns})".encode())
    insert(conn, table.name, table.cols, list(zip(table.ids, table.rows, strict=True)))


def insert(
    conn: psycopg.Connection[Any], name: str, cols: Sequence[Col], rows: Sequence[tuple[int, list[Any]]]
) -> None:
    if not rows:
        return
    names = ", ".join(["id", *(dq(c.name) for c in cols)])
    marks = "(" + ", ".join(["%s", *(c.kind.bind for c in cols)]) + ")"
    params = list(itertools.chain.from_iterable((i, *values) for i, values in rows))
    conn.execute(f"INSERT INTO {dq(name)} ({names}) VALUES {', '.join([marks] * len(rows))}".encode(), params)


def read(conn: psycopg.Connection[Any], name: str, cols: Sequence[Col]) -> Rows:
    """The table as psycopg reads it (json as its text, probes for values Python cannot hold)."""
    exprs = ["id"]
    for col in cols:
        quoted = dq(col.name)
        exprs.append(
            col.kind.probe["postgres"].format(c=quoted) if col.kind.probe else col.kind.upstream_read.format(c=quoted)
        )
    return conn.execute(f"SELECT {', '.join(exprs)} FROM {dq(name)} ORDER BY id".encode()).fetchall()


def drop(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {dq(name)}".encode())


def _unmapped(ddl: str, samples: list[str]) -> Kind:
    """A type with no design mapping; its value is PostgreSQL's own text form (``col::text``)."""
    return Kind(ddl, ddl, st.sampled_from(samples), "text", f"%s::{ddl}", upstream_read="{c}::text")


#: types docs/types.md lists as unmapped (bootstrap must still keep the rest of the table: issue 10 item 9)
UNMAPPED: list[Kind] = [
    _unmapped("tsvector", ["a fat cat", "", "'ünï' x:1"]),
    _unmapped("interval", ["1 mon 2 days 00:00:00.000003", "-00:00:01", "178000000 years"]),
    _unmapped("money", ["12.34", "-0.01", "0"]),
    _unmapped("inet", ["192.168.0.1/24", "::1", "10.0.0.1"]),
    _unmapped("cidr", ["10.0.0.0/8", "2001:db8::/32"]),
    _unmapped("macaddr", ["08:00:2b:01:02:03"]),
    _unmapped("timetz", ["12:00:00+02", "23:59:59.999999-11:30"]),
    _unmapped("point", ["(1,2)", "(-1.5,0)"]),
    _unmapped("bit(3)", ["101", "000"]),
    _unmapped("xml", ["<a>b</a>", "ünï"]),
    _unmapped("int4range", ["[1,5)", "empty"]),
]

#: numeric wider than DuckDB's 38 digits (issue 10 item 11)
WIDE: list[Kind] = [
    Kind(f"numeric({p},{s})", f"numeric({p},{s})", decimals(p, s), "number", f"%s::numeric({p},{s})")
    for p, s in [(39, 0), (50, 20), (76, 38), (60, 60)]
]
