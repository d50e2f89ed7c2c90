"""Load TPC-H ``lineitem`` into PostgreSQL and MariaDB/MySQL for the extract benchmark.

Runs in the peers' virtual environment (``bench/extract/.venv-peers``, made by ``setup.sh``),
which has ``tpchgen-cli``, psycopg2 and pymysql. For each engine it creates

* PostgreSQL: database ``conveyor_bench``, schema ``tpch_sf<scale>``, table ``lineitem``;
* MariaDB/MySQL: database (MySQL's schema) ``tpch_sf<scale>``, table ``lineitem``;

with the TPC-H types (``l_orderkey`` bigint, the other keys integer, ``decimal(15,2)``,
``char(1)``, ``date``, ``char(25)``, ``char(10)``, ``varchar(44)``, all NOT NULL, primary
key ``(l_orderkey, l_linenumber)``), so the upstream table is ``tpch_sf1.lineitem`` on both
engines and several scales can sit side by side. A table that already exists with the
generator's row count is kept. The rows come from ``tpchgen-cli csv`` (the official dbgen
data, generated in a few seconds), loaded with ``COPY ... FROM STDIN`` and
``LOAD DATA LOCAL INFILE``; the CSV is deleted afterwards.

Usage::

    bench/extract/.venv-peers/bin/python bench/extract/prepare.py --scale 1 --engines postgres,mysql
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_BENCH = "host=127.0.0.1 port=5432 user=postgres dbname=conveyor_bench"
PG_DATABASE = "conveyor_bench"
MY_HOST, MY_PORT, MY_USER = "127.0.0.1", 3306, "root"

#: rows of lineitem at scale factor 1 (other scales are close to, not exactly, a multiple)
SF1_ROWS = 6_001_215

COLUMNS = [
    ("l_orderkey", "bigint"),
    ("l_partkey", "integer"),
    ("l_suppkey", "integer"),
    ("l_linenumber", "integer"),
    ("l_quantity", "decimal(15,2)"),
    ("l_extendedprice", "decimal(15,2)"),
    ("l_discount", "decimal(15,2)"),
    ("l_tax", "decimal(15,2)"),
    ("l_returnflag", "char(1)"),
    ("l_linestatus", "char(1)"),
    ("l_shipdate", "date"),
    ("l_commitdate", "date"),
    ("l_receiptdate", "date"),
    ("l_shipinstruct", "char(25)"),
    ("l_shipmode", "char(10)"),
    ("l_comment", "varchar(44)"),
]


def schema_name(scale: float) -> str:
    """``tpch_sf1``, ``tpch_sf3``, ``tpch_sf0_1``: the per-scale schema (PostgreSQL) or database (MySQL)."""
    text = f"{scale:g}".replace(".", "_")
    return f"tpch_sf{text}"


def table_ddl(qualified: str) -> str:
    cols = ",\n  ".join(f"{name} {sql_type} NOT NULL" for name, sql_type in COLUMNS)
    return f"CREATE TABLE {qualified} (\n  {cols}\n)"


# --------------------------------------------------------------------------- data


def generate(scale: float, work: Path) -> tuple[Path, int]:
    """Write lineitem.csv with tpchgen-cli; return its path and row count."""
    tpchgen = Path(sys.executable).parent / "tpchgen-cli"
    started = time.perf_counter()
    subprocess.run(
        [str(tpchgen), "csv", "-s", f"{scale:g}", "--tables", "lineitem", "-o", str(work), "--overwrite"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    path = work / "lineitem.csv"
    rows = count_csv_rows(path)
    seconds = time.perf_counter() - started
    print(f"  generated {rows:,} rows ({path.stat().st_size / 1e6:,.0f} MB CSV) in {seconds:.1f} s")
    return path, rows


def count_csv_rows(path: Path) -> int:
    """Records in tpchgen's CSV: one per line (comments never hold a newline), less the header."""
    lines = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            lines += chunk.count(b"\n")
    return lines - 1


# --------------------------------------------------------------------------- PostgreSQL


def pg_rows(schema: str) -> int | None:
    """Rows of the loaded table, or None when it is missing."""
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,))
        exists = cur.fetchone() is not None
    conn.close()
    if not exists:
        return None
    conn = psycopg2.connect(PG_BENCH)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.lineitem",))
            row = cur.fetchone()
            if not row or not row[0]:
                return None
            cur.execute(f"SELECT count(*) FROM {schema}.lineitem")
            row = cur.fetchone()
            return int(row[0]) if row else None
    finally:
        conn.close()


def pg_load(schema: str, csv_path: Path) -> None:
    import psycopg2

    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,))
        if cur.fetchone() is None:
            cur.execute(f"CREATE DATABASE {PG_DATABASE}")
    admin.close()
    conn = psycopg2.connect(PG_BENCH)
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        cur.execute(f"DROP TABLE IF EXISTS {schema}.lineitem")
        # created in the same transaction as the COPY, so FREEZE applies (no later hint-bit writes)
        cur.execute(table_ddl(f"{schema}.lineitem"))
        with open(csv_path, "rb") as handle:
            cur.copy_expert(
                f"COPY {schema}.lineitem FROM STDIN (FORMAT csv, HEADER true, FREEZE true)", handle, size=1 << 20
            )
        cur.execute(f"ALTER TABLE {schema}.lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber)")
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"VACUUM (ANALYZE) {schema}.lineitem")
        cur.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", (f"{schema}.lineitem",))
        size = cur.fetchone()
    conn.close()
    print(f"  postgres: loaded {schema}.lineitem ({size[0] if size else '?'}) in {time.perf_counter() - started:.1f} s")


# --------------------------------------------------------------------------- MariaDB / MySQL


def my_connect(database: str | None = None, **extra: Any) -> Any:
    import pymysql

    return pymysql.connect(
        host=MY_HOST, port=MY_PORT, user=MY_USER, password="", database=database, autocommit=True, **extra
    )


def my_rows(schema: str) -> int | None:
    conn = my_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'lineitem'",
                (schema,),
            )
            row = cur.fetchone()
            if not row or not row[0]:
                return None
            cur.execute(f"SELECT COUNT(*) FROM {schema}.lineitem")
            row = cur.fetchone()
            return int(row[0]) if row else None
    finally:
        conn.close()


def my_load(schema: str, csv_path: Path) -> None:
    started = time.perf_counter()
    conn = my_connect(local_infile=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {schema}")
            cur.execute(f"DROP TABLE IF EXISTS {schema}.lineitem")
            cur.execute(
                table_ddl(f"{schema}.lineitem")[:-1]
                + ",\n  PRIMARY KEY (l_orderkey, l_linenumber)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            )
            # the CSV is sorted by the primary key: one bulk, in-order insert
            cur.execute("SET SESSION unique_checks = 0")
            cur.execute("SET SESSION foreign_key_checks = 0")
            cur.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE {schema}.lineitem CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n' IGNORE 1 LINES",
                (str(csv_path),),
            )
            cur.execute(f"ANALYZE TABLE {schema}.lineitem")
            cur.fetchall()
    finally:
        conn.close()
    print(f"  mysql: loaded {schema}.lineitem in {time.perf_counter() - started:.1f} s")


ENGINES = {"postgres": (pg_rows, pg_load), "mysql": (my_rows, my_load)}


def prepare(scale: float, engines: list[str], work_dir: Path | None) -> dict[str, int]:
    """Make sure every engine has lineitem at this scale; return each one's row count."""
    schema = schema_name(scale)
    counts = {engine: ENGINES[engine][0](schema) for engine in engines}
    expected = _expected_rows(scale)
    todo = [e for e in engines if counts[e] is None or (expected is not None and counts[e] != expected)]
    for engine in engines:
        if engine not in todo:
            print(f"  {engine}: {schema}.lineitem already has {counts[engine]:,} rows, kept")
    if not todo:
        return {e: int(counts[e] or 0) for e in engines}
    work = Path(tempfile.mkdtemp(prefix="tpch-", dir=work_dir))
    try:
        csv_path, rows = generate(scale, work)
        _remember_rows(scale, rows)
        for engine in todo:
            if counts[engine] == rows:
                print(f"  {engine}: {schema}.lineitem already has {rows:,} rows, kept")
                continue
            ENGINES[engine][1](schema, csv_path)
            counts[engine] = ENGINES[engine][0](schema)
            if counts[engine] != rows:
                raise SystemExit(f"{engine}: loaded {counts[engine]} rows, expected {rows}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {e: int(counts[e] or 0) for e in engines}


_ROWS_FILE = HERE / ".tpch-rows.json"


def _expected_rows(scale: float) -> int | None:
    """The generator's row count at this scale, when known (SF1 always; others once generated)."""
    if scale == 1:
        return SF1_ROWS
    try:
        return int(json.loads(_ROWS_FILE.read_text())[f"{scale:g}"])
    except (OSError, ValueError, KeyError):
        return None


def _remember_rows(scale: float, rows: int) -> None:
    try:
        known = json.loads(_ROWS_FILE.read_text())
    except (OSError, ValueError):
        known = {}
    known[f"{scale:g}"] = rows
    _ROWS_FILE.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    parser.add_argument("--engines", default="postgres,mysql", help="postgres, mysql or both (comma-separated)")
    parser.add_argument("--work-dir", type=Path, help="where the CSV is generated (default: the system temp dir)")
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s): {', '.join(unknown)} (use postgres, mysql)")
    print(f"TPC-H lineitem SF{args.scale:g} -> {', '.join(engines)}")
    counts = prepare(args.scale, engines, args.work_dir)
    print(json.dumps({"scale": args.scale, "schema": schema_name(args.scale), "rows": counts}))


if __name__ == "__main__":
    main()
