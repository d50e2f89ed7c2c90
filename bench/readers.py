"""Measure the upstream readers: rows/s and peak RSS reading a lineitem-like table to Parquet.

Creates (once) a table of ``--rows`` rows shaped like TPC-H ``lineitem`` (16 columns:
bigint/int keys, four decimal(15,2), two char(1), three dates, char(25), char(10),
varchar(44)) in PostgreSQL and in MariaDB/MySQL, then reads it with each reader in a fresh
subprocess (so ``ru_maxrss`` is that reader's own peak) into a ``pyarrow.parquet.ParquetWriter``.

Readers compared:

* ``postgres:conveyor`` - ``PostgresSource.read`` (ADBC binary COPY -> Arrow, exact decimal cast)
* ``postgres:psycopg-copy`` - psycopg 3 ``COPY ... (FORMAT BINARY)`` rows -> ``pa.array``
* ``postgres:psycopg-cursor`` - psycopg 3 binary server-side cursor, ``fetchmany`` -> ``pa.array``
* ``mysql:conveyor`` - ``MySQLSource.read`` (connectorx arrow_stream, exact wire forms)
* ``mysql:pymysql-sscursor`` - pymysql unbuffered ``SSCursor``, ``fetchmany`` -> ``pa.array``

Usage::

    .venv/bin/python bench/readers.py                      # 1,000,000 rows, every reader
    .venv/bin/python bench/readers.py --rows 200000 --readers postgres:conveyor,mysql:conveyor
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conveyor.design.types import parse_type
from conveyor.sources.base import ReadRequest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/conveyor_bench"
MY_DSN = "mysql://root@127.0.0.1:3306/conveyor_bench"
BATCH_ROWS = 65_536

COLUMNS = [
    ("l_orderkey", "bigint"),
    ("l_partkey", "integer"),
    ("l_suppkey", "integer"),
    ("l_linenumber", "integer"),
    ("l_quantity", "decimal(15,2)"),
    ("l_extendedprice", "decimal(15,2)"),
    ("l_discount", "decimal(15,2)"),
    ("l_tax", "decimal(15,2)"),
    ("l_returnflag", "text"),
    ("l_linestatus", "text"),
    ("l_shipdate", "date"),
    ("l_commitdate", "date"),
    ("l_receiptdate", "date"),
    ("l_shipinstruct", "text"),
    ("l_shipmode", "text"),
    ("l_comment", "text"),
]
REQUEST = ReadRequest("public", "lineitem", tuple((n, parse_type(t)) for n, t in COLUMNS), batch_rows=BATCH_ROWS)

PG_LOAD = """
CREATE TABLE lineitem AS SELECT
  (g / 4)::bigint AS l_orderkey, (g * 7 % 200000)::int AS l_partkey, (g * 13 % 10000)::int AS l_suppkey,
  (g % 7 + 1)::int AS l_linenumber, (g % 50 + 1)::numeric(15,2) AS l_quantity,
  round((g % 100000) * 1.37 + 900, 2)::numeric(15,2) AS l_extendedprice,
  ((g % 11) / 100.0)::numeric(15,2) AS l_discount, ((g % 9) / 100.0)::numeric(15,2) AS l_tax,
  (array['A','N','R'])[g % 3 + 1]::char(1) AS l_returnflag, (array['O','F'])[g % 2 + 1]::char(1) AS l_linestatus,
  date '1992-01-01' + (g % 2500) AS l_shipdate, date '1992-01-31' + (g % 2500) AS l_commitdate,
  date '1992-02-15' + (g % 2500) AS l_receiptdate,
  (array['DELIVER IN PERSON','COLLECT COD','NONE','TAKE BACK RETURN'])[g % 4 + 1]::char(25) AS l_shipinstruct,
  (array['AIR','MAIL','SHIP','TRUCK','RAIL','FOB','REG AIR'])[g % 7 + 1]::char(10) AS l_shipmode,
  (left(md5(g::text), 30) || ' carefully ' || (g % 1000)::text)::varchar(44) AS l_comment
FROM generate_series(1, {rows}) AS g
"""

MY_CREATE = """
CREATE TABLE lineitem (l_orderkey bigint, l_partkey int, l_suppkey int, l_linenumber int,
  l_quantity decimal(15,2), l_extendedprice decimal(15,2), l_discount decimal(15,2), l_tax decimal(15,2),
  l_returnflag char(1), l_linestatus char(1), l_shipdate date, l_commitdate date, l_receiptdate date,
  l_shipinstruct char(25), l_shipmode char(10), l_comment varchar(44)) ENGINE=InnoDB DEFAULT CHARSET utf8mb4
"""

MY_SELECT = """
SELECT {v} DIV 4, {v} * 7 % 200000, {v} * 13 % 10000, {v} % 7 + 1, {v} % 50 + 1, round(({v} % 100000) * 1.37 + 900, 2),
  ({v} % 11) / 100.0, ({v} % 9) / 100.0, elt({v} % 3 + 1, 'A', 'N', 'R'), elt({v} % 2 + 1, 'O', 'F'),
  date '1992-01-01' + interval ({v} % 2500) day, date '1992-01-31' + interval ({v} % 2500) day,
  date '1992-02-15' + interval ({v} % 2500) day,
  elt({v} % 4 + 1, 'DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'),
  elt({v} % 7 + 1, 'AIR', 'MAIL', 'SHIP', 'TRUCK', 'RAIL', 'FOB', 'REG AIR'),
  concat(left(md5({v}), 30), ' carefully ', {v} % 1000)
"""


# --------------------------------------------------------------------------- data


def load_postgres(rows: int) -> None:
    """Create conveyor_bench.lineitem in PostgreSQL with ``rows`` rows (kept when it already has them)."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = 'conveyor_bench'").fetchone():
            admin.execute("CREATE DATABASE conveyor_bench")
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('public.lineitem') IS NOT NULL").fetchone()
        if exists and exists[0] and conn.execute("SELECT count(*) FROM lineitem").fetchone() == (rows,):
            return
        conn.execute("DROP TABLE IF EXISTS lineitem")
        conn.execute(PG_LOAD.format(rows=int(rows)).encode())
        conn.execute("ANALYZE lineitem")


def load_mysql(rows: int) -> None:
    """Create conveyor_bench.lineitem in MariaDB/MySQL (sequence engine or a recursive CTE)."""
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True, charset="utf8mb4")
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS conveyor_bench")
        cur.execute("USE conveyor_bench")
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = 'conveyor_bench' AND TABLE_NAME = 'lineitem'"
        )
        row = cur.fetchone()
        if row and row[0]:
            cur.execute("SELECT COUNT(*) FROM lineitem")
            row = cur.fetchone()
            if row and row[0] == rows:
                return
        cur.execute("DROP TABLE IF EXISTS lineitem")
        cur.execute(MY_CREATE)
        cur.execute("SELECT VERSION()")
        version = str((cur.fetchone() or ("",))[0]).lower()
        if "mariadb" in version:
            # MariaDB's SEQUENCE engine makes the rows without a recursive CTE
            cur.execute(f"INSERT INTO lineitem {MY_SELECT.format(v='seq')} FROM seq_1_to_{int(rows)}")
        else:
            cur.execute(f"SET SESSION cte_max_recursion_depth = {int(rows) + 1}")
            cur.execute(
                "INSERT INTO lineitem WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < "
                f"{int(rows)}) {MY_SELECT.format(v='n')} FROM g"
            )
        cur.execute("ANALYZE TABLE lineitem")
    conn.close()


# --------------------------------------------------------------------------- readers


def _from_rows(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    return pa.RecordBatch.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)], schema=schema
    )


def read_pg_conveyor() -> Iterator[pa.RecordBatch]:
    from conveyor.sources.postgres import PostgresSource

    with PostgresSource("bench", PG_DSN) as source:
        yield from source.read(REQUEST)


def read_pg_copy() -> Iterator[pa.RecordBatch]:
    import psycopg

    types = ["int8", "int4", "int4", "int4", *["numeric"] * 4, "bpchar", "bpchar", *["date"] * 3]
    types += ["bpchar", "bpchar", "varchar"]
    names = ", ".join(n for n, _ in COLUMNS)
    statement = f"COPY (SELECT {names} FROM lineitem) TO STDOUT (FORMAT BINARY)".encode()
    with psycopg.connect(PG_DSN) as conn, conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(types)
        buffer: list[tuple[Any, ...]] = []
        for row in copy.rows():
            buffer.append(row)
            if len(buffer) == BATCH_ROWS:
                yield _from_rows(buffer, REQUEST.arrow_schema)
                buffer = []
        if buffer:
            yield _from_rows(buffer, REQUEST.arrow_schema)


def read_pg_cursor() -> Iterator[pa.RecordBatch]:
    import psycopg

    names = ", ".join(n for n, _ in COLUMNS)
    with psycopg.connect(PG_DSN) as conn, conn.cursor(name="bench", binary=True) as cur:
        cur.itersize = BATCH_ROWS
        cur.execute(f"SELECT {names} FROM lineitem".encode())
        while rows := cur.fetchmany(BATCH_ROWS):
            yield _from_rows(rows, REQUEST.arrow_schema)


def read_my_conveyor() -> Iterator[pa.RecordBatch]:
    from conveyor.sources.mysql import MySQLSource

    request = ReadRequest("conveyor_bench", "lineitem", REQUEST.columns, batch_rows=BATCH_ROWS)
    with MySQLSource("bench", MY_DSN) as source:
        yield from source.read(request)


def read_my_pymysql() -> Iterator[pa.RecordBatch]:
    import pymysql
    import pymysql.cursors

    conn = pymysql.connect(
        host="127.0.0.1",
        user="root",
        password="",
        database="conveyor_bench",
        charset="utf8mb4",
        cursorclass=pymysql.cursors.SSCursor,
    )
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(n for n, _ in COLUMNS)} FROM lineitem")
        while rows := cur.fetchmany(BATCH_ROWS):
            yield _from_rows(list(rows), REQUEST.arrow_schema)
    conn.close()


READERS: dict[str, Callable[[], Iterator[pa.RecordBatch]]] = {
    "postgres:conveyor": read_pg_conveyor,
    "postgres:psycopg-copy": read_pg_copy,
    "postgres:psycopg-cursor": read_pg_cursor,
    "mysql:conveyor": read_my_conveyor,
    "mysql:pymysql-sscursor": read_my_pymysql,
}


def run_one(name: str, out_dir: str) -> dict[str, Any]:
    """Read with one reader into a Parquet file; return rows, seconds and peak RSS."""
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    rows = 0
    path = Path(out_dir) / (name.replace(":", "_") + ".parquet")
    with pq.ParquetWriter(path, REQUEST.arrow_schema) as writer:
        for batch in READERS[name]():
            assert batch.schema == REQUEST.arrow_schema, batch.schema
            writer.write_batch(batch)
            rows += batch.num_rows
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "reader": name,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mib": round(peak / 1024),
        "rss_before_mib": round(base_rss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--readers", default=",".join(READERS))
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_one(args.run, args.out)))
        return
    names = [n for n in args.readers.split(",") if n]
    engines = {n.split(":")[0] for n in names}
    for engine, load in (("postgres", load_postgres), ("mysql", load_mysql)):
        if engine in engines:
            start = time.perf_counter()
            load(args.rows)
            print(f"{engine}: table ready in {time.perf_counter() - start:.1f}s", flush=True)
    print(f"{'reader':26} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'peak RSS MiB':>13} {'RSS at start':>13}")
    with tempfile.TemporaryDirectory() as out:
        for name in names:
            done = subprocess.run(
                [sys.executable, __file__, "--run", name, "--out", out], capture_output=True, text=True, check=False
            )
            if done.returncode:
                print(f"{name:26} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{name:26} {r['rows']:>9} {r['seconds']:>8} {r['rows_per_s']:>10,} {r['peak_rss_mib']:>13}"
                f" {r['rss_before_mib']:>13}",
                flush=True,
            )


if __name__ == "__main__":
    main()
