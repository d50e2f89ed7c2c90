"""Exact round trip: upstream -> bootstrap -> extract -> Parquet -> DuckDB, on both engines.

Every value is compared with the value fetched independently through psycopg/pymysql,
first in the committed extract's Parquet parts and then in the loaded warehouse.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pytest

from conveyor.bootstrap import bootstrap

from .conftest import extract, lake, manifest_table, only_schema, write_project

# ------------------------------------------------------------------------------ comparison


def canon(value: Any, kind: str = "") -> Any:
    """A canonical Python value: instants in UTC, float32 as float32, NaN comparable, UUIDs parsed."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [canon(v, kind) for v in value]
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return ("instant", value.astimezone(UTC))
    if isinstance(value, timedelta):  # pymysql returns TIME as a duration
        return (datetime.min + value).time()
    if kind == "uuid":
        return uuid.UUID(str(value))
    if kind == "real":
        value = float(np.float32(value))
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def compare(expected: list[tuple[Any, ...]], actual: list[tuple[Any, ...]], names: list[str], kinds: dict[str, str]):
    """Column by column, row by row; the message names the first difference."""
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}"
    for row_e, row_a in zip(expected, actual, strict=True):
        for index, name in enumerate(names):
            e, a = canon(row_e[index], kinds.get(name, "")), canon(row_a[index], kinds.get(name, ""))
            assert a == e and type(a) is type(e), f"row id={row_e[0]} column {name}: got {a!r}, expected {e!r}"


def parquet_rows(root: Path, lake_table: str, names: list[str]) -> list[tuple[Any, ...]]:
    manifest = lake(root).latest("up", lake_table)
    assert manifest is not None
    table = manifest_table(manifest).sort_by("id")
    assert table.schema.names == names
    return [tuple(row[n] for n in names) for row in table.to_pylist()]


def duck(root: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(root / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def quoted(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def api_project(root: Path) -> Any:
    from conveyor import api

    return api.open_project(root)


def bootstrap_and_extract(root: Path) -> None:
    from conveyor import api

    report = bootstrap(api.open_project(root))
    assert report.ok, report.to_json()
    outcome = extract(root)
    assert outcome.ok, outcome.extract


# ------------------------------------------------------------------------------ PostgreSQL

PG_TABLE = """
CREATE TYPE mood AS ENUM ('happy', 'sad', 'ünïcode 😀');
CREATE TABLE everything (
    id integer PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint,
    d numeric(12,2), dmax numeric(38,10), dneg numeric(5,-2), dfrac numeric(3,5),
    r real, f double precision,
    t text, vc varchar(20), ch char(4),
    b boolean,
    dt date, tm time, ts timestamp, tz timestamptz,
    u uuid, j json, jb jsonb, by bytea, e mood,
    ai integer[], at text[], an numeric(10,2)[], atz timestamptz[]
);
INSERT INTO everything VALUES
 (1, -32768, -2147483648, 9223372036854775807,
  -9999999999.99, 9999999999999999999999999999.9999999999, 9999900, 0.00123,
  3.4028235e38, 1.7976931348623157e308,
  'four bytes: 😀 𝄞 and ß', 'ünïcödé', 'ab',
  true, '2024-02-29', '23:59:59.999999', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456+05:30',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1, "a": [1, 2.50]}', '{"b": 1, "a": [1, 2.50], "😀": null}',
  '\\x00ff10', 'ünïcode 😀',
  ARRAY[1, NULL, 3], ARRAY['x', NULL, '😀', ''], ARRAY[1.10, NULL, -2.00]::numeric(10,2)[],
  ARRAY['2024-06-01 00:00:00.000001-07:00', NULL]::timestamptz[]),
 (2, 32767, 2147483647, -9223372036854775808,
  0.01, -0.0000000001, -99900, -0.00999,
  'NaN', '-Infinity',
  '', ' ', 'abcd',
  false, '0001-01-01', '00:00:00', '1970-01-01 00:00:00.000001', '1999-12-31 23:59:59.999999-11:00',
  '00000000-0000-0000-0000-000000000000', '[]', '{}', '\\x', 'happy',
  '{}', '{}', '{}', '{}'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""

PG_NAMES = [
    "id", "i2", "i4", "i8", "d", "dmax", "dneg", "dfrac", "r", "f", "t", "vc", "ch", "b", "dt", "tm", "ts", "tz",
    "u", "j", "jb", "by", "e", "ai", "at", "an", "atz",
]  # fmt: skip
PG_KINDS = {"r": "real", "u": "uuid"}


def pg_upstream(pg: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """The table fetched through psycopg (json as its text, enums as labels)."""
    select = ", ".join(f"{n}::text" if n in ("j", "jb") else n for n in PG_NAMES)
    return pg.execute(f"SELECT {select} FROM everything ORDER BY id").fetchall()


@pytest.mark.postgres
def test_postgres_every_type_round_trips_exactly(tmp_path: Path, pg, pg_dsn: str, monkeypatch) -> None:
    monkeypatch.setenv("UP_DSN", pg_dsn)
    pg.execute(PG_TABLE)
    root = write_project(tmp_path / "p", "postgres")
    bootstrap_and_extract(root)
    expected = pg_upstream(pg)

    manifest = lake(root).latest("up", "up.everything")
    assert manifest is not None
    schema = manifest.arrow_schema
    assert schema.field("d").type == pa.decimal128(12, 2)
    assert schema.field("dmax").type == pa.decimal128(38, 10)
    assert schema.field("dneg").type == pa.decimal128(7, 0)
    assert schema.field("dfrac").type == pa.decimal128(5, 5)
    assert schema.field("tz").type == pa.timestamp("us", tz="UTC")
    assert schema.field("ts").type == pa.timestamp("us")
    assert schema.field("ai").type == pa.list_(pa.int32())
    compare(expected, parquet_rows(root, "up.everything", PG_NAMES), PG_NAMES, PG_KINDS)
    # the offsets were turned into the right instants, microseconds intact
    row1 = manifest_table(manifest).sort_by("id").to_pylist()[0]
    assert row1["tz"] == datetime(2024, 1, 1, 21, 34, 5, 123456, tzinfo=UTC)
    assert row1["atz"] == [datetime(2024, 6, 1, 7, 0, 0, 1, tzinfo=UTC), None]

    from conveyor import api

    outcome = api.load(api.open_project(root))
    assert outcome.ok, outcome.build
    types = {name: kind for name, kind, *_ in duck(root, "DESCRIBE up.everything")}
    assert types["d"] == "DECIMAL(12,2)" and types["dmax"] == "DECIMAL(38,10)" and types["dneg"] == "DECIMAL(7,0)"
    assert types["tz"] == "TIMESTAMP WITH TIME ZONE" and types["ts"] == "TIMESTAMP"
    assert types["u"] == "UUID" and types["an"] == "DECIMAL(10,2)[]"
    loaded = duck(root, f"SELECT {quoted(PG_NAMES)} FROM up.everything ORDER BY id")
    # a char(n) is loaded without its trailing blanks, the lake keeps them (docs/types.md)
    at = PG_NAMES.index("ch")
    trimmed = [(*row[:at], None if row[at] is None else row[at].rstrip(" "), *row[at + 1 :]) for row in expected]
    compare(trimmed, loaded, PG_NAMES, PG_KINDS)
    # instants survive whatever the reading session's time zone is
    assert duck(root, "SELECT epoch_us(tz) FROM up.everything WHERE id = 1")[0][0] == 1704144845123456
    assert duck(root, "SELECT count(*) FROM up.everything WHERE id = 3 AND COLUMNS(* EXCLUDE (id)) IS NULL") == [(1,)]


@pytest.mark.postgres
def test_postgres_wide_decimals_reach_the_lake_exactly(tmp_path: Path, pg, pg_dsn: str, monkeypatch) -> None:
    """numeric(p > 38) is decimal256 in the lake, every digit kept (DuckDB stops at 38 digits)."""
    monkeypatch.setenv("UP_DSN", pg_dsn)
    pg.execute(
        "CREATE TABLE wide (id int PRIMARY KEY, w numeric(76,38), free numeric);"
        "INSERT INTO wide VALUES (1, '-99999999999999999999999999999999999999.99999999999999999999999999999999999999',"
        " 12345678901234567890123456789.123456789), (2, 1e-38, -0.000000001), (3, NULL, NULL)"
    )
    root = write_project(tmp_path / "p", "postgres")
    assert bootstrap(api_project(root)).ok
    design = root / "schemas/up/wide.yaml"
    # bootstrap writes text for a decimal wider than DuckDB's (docs/types.md); the exact type reads exactly
    assert "numeric(76,38) is wider than the decimal(38,s)" in design.read_text()
    design.write_text(design.read_text().replace("type: text", "type: decimal(76,38)", 1))
    assert extract(root).ok
    manifest = lake(root).latest("up", "up.wide")
    assert manifest is not None
    assert manifest.arrow_schema.field("w").type == pa.decimal256(76, 38)
    assert manifest.arrow_schema.field("free").type == pa.decimal128(38, 9)
    expected = pg.execute("SELECT id, w, free FROM wide ORDER BY id").fetchall()
    compare(expected, parquet_rows(root, "up.wide", ["id", "w", "free"]), ["id", "w", "free"], {})

    from conveyor import api
    from conveyor.validate.preflight import PreflightError

    with pytest.raises(PreflightError) as refused:  # refused loudly, never rounded, before anything is built
        api.load(api.open_project(root))
    error = refused.value.render()
    assert '"w" of "up.wide" has type decimal(76,38)' in error and "decimal(38,s)" in error


@pytest.mark.postgres
def test_postgres_interval_is_extracted_or_refused_by_name(tmp_path: Path, pg, pg_dsn: str, monkeypatch) -> None:
    monkeypatch.setenv("UP_DSN", pg_dsn)
    pg.execute(
        "CREATE TABLE waits (id int PRIMARY KEY, waited interval); INSERT INTO waits VALUES (1, '1 mon 2 days 3 us')"
    )
    root = write_project(tmp_path / "p", "postgres")
    from conveyor import api

    report = bootstrap(api.open_project(root))
    assert report.ok  # written as text, PostgreSQL's text form (docs/types.md)
    assert "interval has no exact design type" in (root / "schemas/up/waits.yaml").read_text()
    assert extract(root).ok
    assert parquet_rows(root, "up.waits", ["id", "waited"]) == [(1, "1 mon 2 days 00:00:00.000003")]
    design = root / "schemas/up/waits.yaml"
    design.write_text(design.read_text().replace("type: text", "type: bigint", 1))
    outcome = extract(root)
    failed = outcome.extract.failed[0].error if outcome.extract and outcome.extract.failed else ""
    assert '"waited"' in failed and "interval" in failed, failed  # refused by name


# ------------------------------------------------------------------------------ MariaDB

MY_TABLE = """
CREATE TABLE everything (
    id int PRIMARY KEY,
    ti tinyint, tu tinyint unsigned, si smallint, su smallint unsigned, mi mediumint, mu mediumint unsigned,
    ii int, iu int unsigned, bi bigint, bu bigint unsigned,
    d decimal(12,2), dmax decimal(38,10), dz decimal(5,5),
    fl float, db double,
    t text, vc varchar(20), ch char(5), lt longtext,
    b tinyint(1), dt date, tm time(6), dtm datetime(6), tsp timestamp(6) NULL, yr year,
    u uuid, j json, bl blob, bn binary(4), bt bit(10),
    e enum('happy', 'sad', 'ünï 😀'), st set('a', 'b', 'c')
) DEFAULT CHARSET = utf8mb4
"""
MY_ROWS = """
INSERT INTO everything VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615,
  -9999999999.99, 9999999999999999999999999999.9999999999, 0.99999,
  1.5, 1.7976931348623157e308,
  'four bytes: 😀 𝄞 and ß', 'ünïcödé', 'ab', REPEAT('😀', 1000),
  1, '2024-02-29', '23:59:59.999999', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456', 2155,
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1, "a": [1, 2.50]}', x'00ff10', x'0102', b'1010101010',
  'ünï 😀', 'a,c'),
 (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0,
  0.01, -0.0000000001, -0.00001,
  -0.25, -2.2250738585072014e-308,
  '', ' x', 'abcde', '',
  0, '1000-01-01', '00:00:00', '1970-01-01 00:00:00.000001', '1970-01-01 05:30:01.000001', 1901,
  '00000000-0000-0000-0000-000000000000', '[]', x'', x'00000000', b'0',
  'happy', ''),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
"""
MY_NAMES = [
    "id", "ti", "tu", "si", "su", "mi", "mu", "ii", "iu", "bi", "bu", "d", "dmax", "dz", "fl", "db", "t", "vc", "ch",
    "lt", "b", "dt", "tm", "dtm", "tsp", "yr", "u", "j", "bl", "bn", "bt", "e", "st",
]  # fmt: skip
MY_KINDS = {"fl": "real", "u": "uuid"}


def my_upstream(my) -> list[tuple[Any, ...]]:
    """The table through pymysql (session UTC): timestamps become UTC instants, tinyint(1) booleans."""
    rows = my(f"SELECT {', '.join(MY_NAMES)} FROM everything ORDER BY id")
    out = []
    for row in rows:
        values = dict(zip(MY_NAMES, row, strict=True))
        if values["tsp"] is not None:
            values["tsp"] = values["tsp"].replace(tzinfo=UTC)
        if values["b"] is not None:
            values["b"] = bool(values["b"])
        out.append(tuple(values[n] for n in MY_NAMES))
    return out


@pytest.mark.mysql
def test_mariadb_every_type_round_trips_exactly(tmp_path: Path, my, my_db: str, my_dsn: str, monkeypatch) -> None:
    monkeypatch.setenv("UP_DSN", my_dsn)
    my(MY_TABLE)
    # written from a +05:30 session: DATETIME keeps the wall clock, TIMESTAMP the instant
    my("SET time_zone = '+05:30'")
    my(MY_ROWS)
    my("SET time_zone = '+00:00'")
    root = write_project(tmp_path / "p", "mysql", settings=only_schema(my_db))
    bootstrap_and_extract(root)
    expected = my_upstream(my)

    lake_table = "up.everything"
    manifest = lake(root).latest("up", lake_table)
    assert manifest is not None
    schema = manifest.arrow_schema
    assert schema.field("bu").type == pa.uint64() and schema.field("b").type == pa.bool_()
    assert schema.field("dtm").type == pa.timestamp("us")
    assert schema.field("tsp").type == pa.timestamp("us", tz="UTC")
    assert schema.field("dmax").type == pa.decimal128(38, 10)
    compare(expected, parquet_rows(root, lake_table, MY_NAMES), MY_NAMES, MY_KINDS)
    row1 = manifest_table(manifest).sort_by("id").to_pylist()[0]
    assert row1["bu"] == 18446744073709551615
    assert row1["dtm"] == datetime(2024, 1, 2, 3, 4, 5, 123456)  # naive, as written
    assert row1["tsp"] == datetime(2024, 1, 1, 21, 34, 5, 123456, tzinfo=UTC)  # the instant
    assert row1["tm"] == time(23, 59, 59, 999999) and row1["dt"] == date(2024, 2, 29)

    from conveyor import api

    outcome = api.load(api.open_project(root))
    assert outcome.ok, outcome.build
    types = {name: kind for name, kind, *_ in duck(root, "DESCRIBE up.everything")}
    assert types["bu"] == "UBIGINT" and types["d"] == "DECIMAL(12,2)" and types["dmax"] == "DECIMAL(38,10)"
    assert types["tsp"] == "TIMESTAMP WITH TIME ZONE" and types["dtm"] == "TIMESTAMP" and types["b"] == "BOOLEAN"
    loaded = duck(root, f"SELECT {quoted(MY_NAMES)} FROM up.everything ORDER BY id")
    compare(expected, loaded, MY_NAMES, MY_KINDS)
    assert duck(root, "SELECT epoch_us(tsp), bu FROM up.everything WHERE id = 1") == [
        (1704144845123456, 18446744073709551615)
    ]


@pytest.mark.mysql
def test_mariadb_decimal_65_30_reaches_the_lake_exactly(tmp_path: Path, my, my_db: str, my_dsn, monkeypatch) -> None:
    monkeypatch.setenv("UP_DSN", my_dsn)
    my("CREATE TABLE wide (id int PRIMARY KEY, w decimal(65,30))")
    my(
        "INSERT INTO wide VALUES (1, '-99999999999999999999999999999999999.999999999999999999999999999999'),"
        " (2, 0.000000000000000000000000000001), (3, NULL)"
    )
    root = write_project(tmp_path / "p", "mysql", settings=only_schema(my_db))
    assert bootstrap(api_project(root)).ok
    design = root / "schemas/up/wide.yaml"
    design.write_text(design.read_text().replace("type: text", "type: decimal(65,30)", 1))  # see above
    assert extract(root).ok
    manifest = lake(root).latest("up", "up.wide")
    assert manifest is not None and manifest.arrow_schema.field("w").type == pa.decimal256(65, 30)
    expected = my("SELECT id, w FROM wide ORDER BY id")
    assert expected[0][1] == Decimal("-99999999999999999999999999999999999.999999999999999999999999999999")
    compare(expected, parquet_rows(root, "up.wide", ["id", "w"]), ["id", "w"], {})
