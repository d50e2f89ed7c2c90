"""The ``spark`` job type against real PostgreSQL and MariaDB, in Spark local mode.

Two projects read the same upstream tables, one with ``job_type: arrow`` and one with
``job_type: spark``; every committed extract must be identical, column by column, and the
incremental watermarks must move identically. Each extract run starts a Spark application
(a JVM) per engine, so the projects and databases are shared by the whole module and each
extract runs every table at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    assert_same_content,
    committed,
    extract,
    extract_attempts,
    extract_state,
    manifest_table,
    my_run,
    pg_run,
    result_of,
    write_project,
)

pytestmark = [pytest.mark.spark, pytest.mark.postgres, pytest.mark.mysql, pytest.mark.slow]

# ----------------------------------------------------------------------------- upstream tables

PG_TYPES = """
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE types (
  id integer PRIMARY KEY, sm smallint, bi bigint, n numeric(12,3), nb numeric(50,10), nu numeric,
  r real, d double precision, c char(5), vc varchar(20), tx text, b boolean, dt date, ts timestamp(6),
  tz timestamptz(6), tm time(6), u uuid, j json, jb jsonb, by bytea, ai integer[], at text[],
  an numeric(10,2)[], ats timestamptz[], tsa timestamp[], m mood, ch "char"
);
INSERT INTO types SELECT g, (g % 30000 - 15000)::smallint, g::bigint * 1000000000007, round(g * 1.2345, 3),
  g::numeric * 1e35 + 0.0123456789, round(g / 7.0, 9), (g / 3.0)::real, g / 7.0::float8,
  chr(65 + g % 26), 'v' || g, repeat('ü€😀', g % 3) || g, g % 2 = 0, date '2000-01-01' + g,
  timestamp '2024-03-10 01:00:00.5' + g * interval '17 minutes 1.000001 seconds',
  timestamptz '2024-01-01 12:00:00.654321+02' + g * interval '1 day 1 microsecond',
  time '00:00:00' + g * interval '1 minute 1.000001 second', md5(g::text)::uuid,
  json_build_object('g', g, 'b', 'x'), jsonb_build_object('g', g, 'b', 'x'), decode(md5(g::text), 'hex'),
  ARRAY[g, NULL, -g], ARRAY['a' || g, NULL], ARRAY[g * 1.25, NULL]::numeric(10,2)[],
  ARRAY[timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'],
  ARRAY[timestamp '2024-03-10 02:30:00' + g * interval '1 millisecond'],
  (CASE g % 2 WHEN 0 THEN 'sad' ELSE 'happy' END)::mood, chr(97 + g % 26)::"char"
FROM generate_series(1, 1500) AS g;
INSERT INTO types (id) VALUES (0);
INSERT INTO types VALUES (-1, -32768, 9223372036854775807, -999999999.999,
  9999999999999999999999999999999999999999.9999999999, 12345678901234567890123456789.123456789,
  'NaN', 'Infinity', '', '', 'ünïcødé 😀', false, '0001-01-01', '0001-01-01 00:00:00',
  '9999-12-31 23:59:59.999999+00', '23:59:59.999999', '00000000-0000-0000-0000-000000000000',
  '{"b": 1,   "a": [1, 2]}', '{"b": 1,   "a": [1, 2]}', '\\x', '{}', '{}', '{}', '{}', '{}', 'sad', ' ');
INSERT INTO types (id, r, d, dt, ts, tz) VALUES (-2, '-Infinity', 'NaN', '1582-10-10', '1582-10-10 12:00:00',
  '1000-01-01 00:00:00+00');
CREATE TABLE events (id integer PRIMARY KEY, code text, amount numeric(10,2), updated_at timestamptz(6) NOT NULL);
INSERT INTO events SELECT g, 'code-' || lpad((g * 7919 % 1000)::text, 4, '0'), g * 0.25,
  timestamptz '2024-03-01 12:00:00+00' + g * interval '1 second 1 microsecond'
FROM generate_series(1, 400) AS g;
"""

PG_DESIGNS: dict[str, dict[str, Any]] = {
    "pg.types": {
        "source_table": "public.types",
        "columns": [
            {"name": n, "type": t}
            for n, t in [
                ("id", "integer"),
                ("sm", "smallint"),
                ("bi", "bigint"),
                ("n", "decimal(12,3)"),
                ("nb", "decimal(50,10)"),
                ("nu", "decimal(38,9)"),
                ("r", "real"),
                ("d", "double"),
                ("c", "text"),
                ("vc", "text"),
                ("tx", "text"),
                ("b", "boolean"),
                ("dt", "date"),
                ("ts", "timestamp"),
                ("tz", "timestamptz"),
                ("tm", "time"),
                ("u", "uuid"),
                ("j", "json"),
                ("jb", "json"),
                ("by", "bytes"),
                ("ai", "integer[]"),
                ("at", "text[]"),
                ("an", "decimal(10,2)[]"),
                ("ats", "timestamptz[]"),
                ("tsa", "timestamp[]"),
                ("m", "text"),
                ("ch", "text"),
            ]
        ],
        "extract": {"split_by": "id", "partitions": 3},
    },
    "pg.events": {
        "source_table": "public.events",
        "columns": [
            {"name": "id", "type": "integer"},
            {"name": "code", "type": "text"},
            {"name": "amount", "type": "decimal(10,2)"},
            {"name": "updated_at", "type": "timestamptz"},
        ],
        "extract": {"split_by": "code", "partitions": 2, "incremental": {"cursor": "updated_at", "lag": "1 second"}},
    },
}

MY_TYPES = """
CREATE TABLE types (
  id int PRIMARY KEY, b tinyint(1), ti tinyint, tu tinyint unsigned, su smallint unsigned, mi mediumint,
  iu int unsigned, bu bigint unsigned, bi bigint, de decimal(65,30), d2 decimal(10,2), f float, dbl double,
  c char(5), vc varchar(20), tx text, e enum('a','b'), st set('a','b','c'), j json, bin binary(4),
  vb varbinary(10), bt bit(10), dt date, dtm datetime(6), ts timestamp(6) NULL, tm time(6), y year, u uuid,
  bl blob
)
"""
MY_COLUMNS = [
    ("id", "integer"),
    ("b", "boolean"),
    ("ti", "tinyint"),
    ("tu", "utinyint"),
    ("su", "usmallint"),
    ("mi", "integer"),
    ("iu", "uinteger"),
    ("bu", "ubigint"),
    ("bi", "bigint"),
    ("de", "decimal(65,30)"),
    ("d2", "decimal(10,2)"),
    ("f", "real"),
    ("dbl", "double"),
    ("c", "text"),
    ("vc", "text"),
    ("tx", "text"),
    ("e", "text"),
    ("st", "text"),
    ("j", "json"),
    ("bin", "bytes"),
    ("vb", "bytes"),
    ("bt", "bytes"),
    ("dt", "date"),
    ("dtm", "timestamp"),
    ("ts", "timestamptz"),
    ("tm", "time"),
    ("y", "smallint"),
    ("u", "uuid"),
    ("bl", "bytes"),
]


def my_rows() -> list[tuple[Any, ...]]:
    start = datetime(2024, 3, 10, 1, 0, 0, 500000)
    rows: list[tuple[Any, ...]] = []
    for g in range(1, 701):
        rows.append(
            (
                g,
                g % 2,
                g % 256 - 128,
                g % 256,
                g * 90 % 65536,
                g * 11_000 - 4_000_000,
                4_294_967_295 - g,
                18_446_744_073_709_551_615 - g,
                -(g * 1_000_000_000_007),
                Decimal(g) * Decimal("1e34") + Decimal("0.123456789012345678901234567891"),
                Decimal(g) / 4,
                [0.1, 1.2345678, 3.4e38, -1e-30][g % 4],
                [0.1 + 0.2, 1e-300, -2.5, 1.7976931348623157e308][g % 4],
                chr(65 + g % 26),
                f"v{g}",
                "ü€😀" * (g % 3) + str(g),
                "ab"[g % 2],
                ["a", "a,b", "", "b,c"][g % 4],
                json.dumps({"g": g, "b": "x"}),
                bytes([g % 256, 0]),
                bytes([g % 256]) * (g % 5),
                g % 1024,
                (datetime(2000, 1, 1) + timedelta(days=g)).date(),
                start + timedelta(minutes=17 * g, seconds=g, microseconds=g),
                datetime(2024, 1, 1, 10) + timedelta(days=g, microseconds=g),
                timedelta(seconds=g * 61, microseconds=g),
                1901 + g % 255,
                f"{g:08x}-0000-4000-8000-{g:012x}",
                b"\x00\xff" * (g % 3),
            )
        )
    return rows


MY_SPECIAL = [
    "INSERT INTO types (id) VALUES (0)",
    "INSERT INTO types (id, b, ti, tu, su, mi, iu, bu, bi, de, d2, f, dbl, c, vc, tx, dt, dtm, ts, tm, y) VALUES "
    "(-1, 0, -128, 255, 65535, -8388608, 4294967295, 18446744073709551615, -9223372036854775808, "
    "-99999999999999999999999999999999999.999999999999999999999999999999, -99999999.99, -3.40282e38, "
    "-1.7976931348623157e308, '', '', 'ünïcødé 😀', '0000-00-00', '1000-01-01 00:00:00', "
    "'1970-01-01 00:00:01', '23:59:59.999999', 2155)",
    "INSERT INTO types (id, dt, dtm) VALUES (-2, '2024-00-10', '9999-12-31 23:59:59.999999')",
]


@dataclass
class Projects:
    """The two projects over the same upstream tables, and how to change those tables."""

    arrow: Path
    spark: Path
    pg: Any
    my: Any
    my_schema: str


@pytest.fixture(scope="module")
def projects(pg_db: str, my_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Projects]:
    pg = pg_run(pg_db)
    pg(PG_TYPES)
    my = my_run(my_db)
    my(MY_TYPES)
    my("INSERT INTO types VALUES (" + ", ".join(["%s"] * len(MY_COLUMNS)) + ")", my_rows()[0])
    conn_rows = my_rows()[1:]
    for offset in range(0, len(conn_rows), 200):
        chunk = conn_rows[offset : offset + 200]
        placeholders = ", ".join(["(" + ", ".join(["%s"] * len(MY_COLUMNS)) + ")"] * len(chunk))
        my(f"INSERT INTO types VALUES {placeholders}", [v for row in chunk for v in row])
    for statement in MY_SPECIAL:
        my(statement)
    designs = {
        **PG_DESIGNS,
        "my.types": {
            "source_table": f"{my_db}.types",
            "columns": [{"name": n, "type": t} for n, t in MY_COLUMNS],
            "extract": {"split_by": "dtm", "partitions": 2},
        },
    }
    sources = {
        "pg": {"type": "postgres", "dsn": "${PG_DSN}"},
        "my": {"type": "mysql", "dsn": "${MY_DSN}"},
    }
    base = tmp_path_factory.mktemp("spark")
    found = Projects(
        write_project(base / "arrow", sources, designs, job_type="arrow"),
        write_project(base / "spark", sources, designs, job_type="spark", jobs=3),
        pg,
        my,
        my_db,
    )
    saved = {k: os.environ.get(k) for k in ("PG_DSN", "MY_DSN", "CONVEYOR_SPARK_MASTER", "TZ")}
    os.environ.update(
        {
            "PG_DSN": pg_db,
            "MY_DSN": f"mysql://root@127.0.0.1:3306/{my_db}",
            "CONVEYOR_SPARK_MASTER": "local[2]",
            # a zone with a DST gap the naive timestamps fall into: the JVM must not use it
            "TZ": "America/New_York",
        }
    )
    try:
        yield found
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def first_run(projects: Projects) -> dict[str, Any]:
    """The first (full) extract of every table, with arrow and with spark."""
    arrow = extract(projects.arrow)
    spark = extract(projects.spark)
    return {"arrow": arrow, "spark": spark}


def latest_pair(projects: Projects, source: str, lake_table: str) -> tuple[Any, Any]:
    arrow = committed(projects.arrow, source, lake_table)
    spark = committed(projects.spark, source, lake_table)
    assert arrow and spark, f"no committed extract of {source}/{lake_table}"
    return arrow[-1], spark[-1]


# ----------------------------------------------------------------------------- tests


def test_every_table_succeeds_with_both_job_types(first_run: dict[str, Any]) -> None:
    for kind, outcome in first_run.items():
        assert outcome.extract is not None
        failed = {r.relation: r.error for r in outcome.extract.results if r.status != "succeeded"}
        assert not failed, f"{kind}: {failed}"


def test_postgres_types_identical(projects: Projects, first_run: dict[str, Any]) -> None:
    arrow, spark = latest_pair(projects, "pg", "pg.types")
    assert (arrow.job_type, spark.job_type) == ("arrow", "spark")
    assert spark.arrow_schema.equals(arrow.arrow_schema)
    assert spark.rows == arrow.rows == 1503
    assert_same_content(manifest_table(arrow), manifest_table(spark), "id")
    # Spark's own range partitioning on the split key, bounds from min/max, one snapshot
    assert "partitionColumn __conveyor_split, lowerBound -2, upperBound 1500, numPartitions 3" in spark.query
    assert all(f.path.startswith("part-") and f.path.endswith(".parquet") for f in spark.files)
    assert spark.folder is not None and not (spark.folder / "_spark").exists()


def test_mysql_types_identical(projects: Projects, first_run: dict[str, Any]) -> None:
    arrow, spark = latest_pair(projects, "my", "my.types")
    assert spark.arrow_schema.equals(arrow.arrow_schema)
    assert spark.rows == arrow.rows == 703
    table = manifest_table(spark)
    assert_same_content(manifest_table(arrow), table, "id")
    by_id = {row["id"]: row for row in table.to_pylist()}
    assert by_id[-1]["bu"] == 18_446_744_073_709_551_615
    assert by_id[-1]["dt"] is None and by_id[-2]["dt"] is None  # zero dates read as NULL, as arrow does
    assert by_id[1]["b"] is True and by_id[2]["b"] is False
    assert "partitionColumn __conveyor_split" in spark.query


def test_spark_values_are_exact(projects: Projects, first_run: dict[str, Any]) -> None:
    """Spot checks of the values Spark would change without the conversion back."""
    _, spark = latest_pair(projects, "pg", "pg.types")
    rows = {row["id"]: row for row in manifest_table(spark).to_pylist()}
    assert rows[-1]["nb"] == Decimal("9999999999999999999999999999999999999999.9999999999")  # p > 38
    assert rows[-1]["nu"] == Decimal("12345678901234567890123456789.123456789")  # unconstrained numeric
    assert rows[-1]["tz"] == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert rows[-1]["j"] == '{"b": 1,   "a": [1, 2]}' and rows[-1]["jb"] == '{"a": [1, 2], "b": 1}'
    assert rows[-1]["c"] == "     "  # char(5) keeps its padding
    assert rows[-2]["dt"].isoformat() == "1582-10-10"  # no Julian calendar shift
    assert rows[1]["ts"] == datetime(2024, 3, 10, 1, 17, 1, 500001)
    assert rows[2]["ts"] == datetime(2024, 3, 10, 1, 34, 2, 500002)
    gap = [r["ts"] for r in rows.values() if r["ts"] and datetime(2024, 3, 10, 2) <= r["ts"] < datetime(2024, 3, 10, 3)]
    assert len(gap) == 4  # naive timestamps inside New York's DST gap are not shifted
    assert str(rows[7]["u"]) and rows[7]["an"] == [Decimal("8.75"), None]


def test_incremental_watermark_moves_exactly_as_arrow(projects: Projects, first_run: dict[str, Any]) -> None:
    arrow, spark = latest_pair(projects, "pg", "pg.events")
    assert spark.watermark == arrow.watermark
    assert not spark.incremental and spark.rows == 400
    assert "predicates:" in spark.query  # a text key: split at the source's quantiles
    # new and changed rows, some inside the lag window, some exactly at the watermark
    projects.pg(
        "INSERT INTO events SELECT g, 'code-new-' || g, g, timestamptz '2024-03-01 12:10:00+00' + g * interval '1 ms' "
        "FROM generate_series(401, 450) AS g"
    )
    projects.pg("UPDATE events SET amount = amount + 1000, updated_at = updated_at + interval '1 hour' WHERE id <= 5")
    projects.pg("UPDATE events SET amount = -1 WHERE id = 400")  # old cursor value inside the 1 second lag
    outcomes = {"arrow": extract(projects.arrow, "pg.events"), "spark": extract(projects.spark, "pg.events")}
    for kind, outcome in outcomes.items():
        assert result_of(outcome, "pg.events").status == "succeeded", (kind, result_of(outcome, "pg.events").error)
    arrow, spark = latest_pair(projects, "pg", "pg.events")
    assert arrow.incremental and spark.incremental
    assert spark.watermark == arrow.watermark
    assert spark.watermark["value"] == "2024-03-01 13:00:05.000005+00:00".replace(" ", "T")
    assert spark.rows == arrow.rows
    assert_same_content(manifest_table(arrow), manifest_table(spark), "id")
    assert {r["id"] for r in manifest_table(spark).to_pylist()} >= {1, 2, 3, 4, 5, 400, 401, 450}
    state = extract_state(projects.spark)["pg.events"]
    assert json.loads(state.watermark)["value"] == spark.watermark["value"]
    assert state.watermark == extract_state(projects.arrow)["pg.events"].watermark
    # nothing new: both keep the watermark
    outcomes = {"arrow": extract(projects.arrow, "pg.events"), "spark": extract(projects.spark, "pg.events")}
    arrow, spark = latest_pair(projects, "pg", "pg.events")
    assert spark.watermark == arrow.watermark
    assert spark.rows == arrow.rows
    assert extract_state(projects.spark)["pg.events"].watermark == state.watermark


def test_tracking_records_spark_extracts(projects: Projects, first_run: dict[str, Any]) -> None:
    attempts = extract_attempts(projects.spark, "pg.types")
    assert attempts and attempts[-1].status == "succeeded" and attempts[-1].rows == 1503
    assert attempts[-1].manifest_path and attempts[-1].error is None
