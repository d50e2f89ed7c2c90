"""Benchmark: Conveyor's PostgreSQL load against ``psql \\copy`` of the same rows as CSV.

    python bench/load_pg.py --scale 1 --runs 3

1. Generates TPC-H lineitem at the scale factor as Parquet parts with tpchgen-cli (installed
   into this Python environment with pip when missing), once, and exports the same rows
   as one CSV file, once. Neither is timed.
2. Each run, in a fresh database table and after a CHECKPOINT:
   - ``psql -c "\\copy lineitem FROM 'lineitem.csv' CSV"``;
   - ``PostgresWarehouse.begin(...).load_table(design, manifest)`` over a Conveyor manifest
     of the Parquet parts, then publish.
   Each runs in its own subprocess, which reports its wall time and peak RSS (the psql
   process's from ``getrusage(RUSAGE_CHILDREN)``, Conveyor's from ``VmHWM``).
3. Prints the median of each, the ratio Conveyor/psql (target: at most 1.2) and a JSON line.

The database is created on the server of ``--dsn`` (default: the local test server,
user postgres) and dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

# lineitem as a Conveyor design: the Parquet types of tpchgen-cli, and the table psql loads into
COLUMNS = [
    ("l_orderkey", "bigint"),
    ("l_partkey", "bigint"),
    ("l_suppkey", "bigint"),
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


def design(name: str) -> Any:
    from conveyor.design.models import TableDesign

    return TableDesign.model_validate(
        {"name": name, "columns": [{"name": n, "type": t, "not_null": True} for n, t in COLUMNS]}
    )


# ---------------------------------------------------------------------------- data


def tpchgen() -> str:
    found = shutil.which("tpchgen-cli") or str(Path(sys.executable).parent / "tpchgen-cli")
    if Path(found).exists():
        return found
    print("installing tpchgen-cli into this environment (pip) ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "tpchgen-cli"], check=True)
    return str(Path(sys.executable).parent / "tpchgen-cli")


def generate(scale: float, data: Path) -> tuple[list[Path], Path]:
    """Parquet parts (about a million rows each, like a Conveyor extract) and one CSV of the same rows."""
    files = parquet_parts(scale, data)
    csv = data / "lineitem.csv"
    if not csv.exists():
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        print("exporting the same rows as CSV for psql ...", flush=True)
        temp = csv.with_suffix(".tmp")
        with open(temp, "wb") as out:
            for path in files:
                parquet = pq.ParquetFile(path)
                schema = pa.schema(
                    [(f.name, pa.string() if pa.types.is_string_view(f.type) else f.type) for f in parquet.schema_arrow]
                )
                for batch in parquet.iter_batches(batch_size=100_000):
                    pacsv.write_csv(batch.cast(schema), out, pacsv.WriteOptions(include_header=False))
        temp.rename(csv)
    return files, csv


def parquet_parts(scale: float, data: Path) -> list[Path]:
    """TPC-H lineitem at ``scale`` as Parquet parts of about a million rows each (generated once)."""
    parts_dir = data / "lineitem"
    parts = max(1, round(scale * 6))
    if not parts_dir.is_dir() or len(list(parts_dir.glob("*.parquet"))) != parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
        print(f"generating TPC-H lineitem SF{scale:g} as {parts} Parquet part(s) ...", flush=True)
        command = [tpchgen(), "parquet", "-s", f"{scale:g}", "--tables", "lineitem", "--output-dir", str(data)]
        if parts > 1:
            command += ["--parts", str(parts)]
        subprocess.run(command, check=True)
        if parts == 1 and (data / "lineitem.parquet").exists():
            parts_dir.mkdir()
            (data / "lineitem.parquet").rename(parts_dir / "lineitem.1.parquet")
    return sorted(parts_dir.glob("*.parquet"), key=lambda p: int(p.stem.split(".")[-1]))


# ---------------------------------------------------------------------------- measured workers


def peak_rss_mb() -> float:
    """VmHWM of this process (the kernel's high-water mark of resident memory)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_psql(dsn: str, table: str, csv: str) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        ["psql", dsn, "-v", "ON_ERROR_STOP=1", "-q", "-c", f"\\copy {table} FROM '{csv}' CSV"],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"psql failed: {done.stderr.strip()}")
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def worker_conveyor(dsn: str, schema: str, files: list[str]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from conveyor.lake.manifest import Manifest, PartFile
    from conveyor.warehouse.postgres.warehouse import PostgresWarehouse

    paths = [Path(f) for f in files]
    parts = [PartFile(p.name, pq.ParquetFile(p).metadata.num_rows, p.stat().st_size, "") for p in paths]
    manifest = Manifest(
        extract_id="tpch",
        source="tpch",
        upstream_table="lineitem",
        relation=f"{schema}.lineitem",
        files=parts,
        arrow_schema=pq.read_schema(paths[0]),
        query="",
        started_at="",
        finished_at="",
        folder=paths[0].parent,
    )
    warehouse = PostgresWarehouse("bench", dsn)
    build = warehouse.begin([schema], run_id="bench")
    try:
        started = time.perf_counter()
        rows = build.load_table(design(f"{schema}.lineitem"), manifest)
        seconds = time.perf_counter() - started
        publish_started = time.perf_counter()
        build.publish()
        publish = time.perf_counter() - publish_started
    except BaseException:
        build.abort()
        raise
    return {"seconds": seconds, "publish_seconds": publish, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def measure(kind: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", kind, *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"{kind} run failed:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------- driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each loader (default 3); medians are reported")
    parser.add_argument("--dsn", default=ADMIN_DSN, help="a database on the server to benchmark (default: %(default)s)")
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "conveyor-bench", help="where data is generated"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.worker == "psql":
        print(json.dumps(worker_psql(*options.args)))
        return
    if options.worker == "conveyor":
        print(json.dumps(worker_conveyor(options.args[0], options.args[1], options.args[2:])))
        return

    import psycopg

    from conveyor.warehouse import ddl

    if shutil.which("psql") is None:
        raise SystemExit("psql is not installed (apt-get install postgresql-client).")
    data = options.data / f"sf{options.scale:g}"
    data.mkdir(parents=True, exist_ok=True)
    files, csv = generate(options.scale, data)

    database = f"conveyor_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(options.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"'.encode())
    dsn = psycopg.conninfo.make_conninfo(options.dsn, dbname=database)
    results: dict[str, list[dict[str, Any]]] = {"psql": [], "conveyor": []}
    try:
        with psycopg.connect(dsn, autocommit=True) as con:
            server = con.execute("SHOW server_version").fetchone()
            for run in range(1, options.runs + 1):
                for kind in ("psql", "conveyor"):
                    con.execute("DROP SCHEMA IF EXISTS bench CASCADE")
                    con.execute('DROP SCHEMA IF EXISTS "bench$backup" CASCADE')
                    if kind == "psql":
                        con.execute("CREATE SCHEMA bench")
                        con.execute(ddl.create_table(design("bench.lineitem"), "postgres").encode())
                    con.execute("CHECKPOINT")
                    if kind == "psql":
                        result = measure("psql", dsn, "bench.lineitem", str(csv))
                    else:
                        result = measure("conveyor", dsn, "bench", *map(str, files))
                    row = con.execute("SELECT count(*) FROM bench.lineitem").fetchone()
                    result["rows"] = row[0] if row else 0
                    results[kind].append(result)
                    print(
                        f"run {run} {kind:>8}: {result['seconds']:7.2f} s  peak RSS {result['peak_rss_mb']:7.1f} MB"
                        f"  ({result['rows']:,} rows)",
                        flush=True,
                    )
            con.execute("DROP SCHEMA IF EXISTS bench CASCADE")
            con.execute('DROP SCHEMA IF EXISTS "bench$backup" CASCADE')
    finally:
        with psycopg.connect(options.dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}"'.encode())

    psql = statistics.median(r["seconds"] for r in results["psql"])
    conveyor = statistics.median(r["seconds"] for r in results["conveyor"])
    summary = {
        "scale": options.scale,
        "runs": options.runs,
        "rows": results["conveyor"][-1]["rows"],
        "parquet_parts": len(files),
        "server": server[0] if server else None,
        "cpus": os.cpu_count(),
        "psql_seconds_median": round(psql, 2),
        "conveyor_seconds_median": round(conveyor, 2),
        "conveyor_publish_seconds_median": round(
            statistics.median(r["publish_seconds"] for r in results["conveyor"]), 3
        ),
        "ratio_conveyor_to_psql": round(conveyor / psql, 3),
        "psql_peak_rss_mb": round(max(r["peak_rss_mb"] for r in results["psql"]), 1),
        "conveyor_peak_rss_mb": round(max(r["peak_rss_mb"] for r in results["conveyor"]), 1),
        "target_ratio": 1.2,
    }
    print(
        f"\nmedian of {options.runs}: psql \\copy {psql:.2f} s, Conveyor load_table {conveyor:.2f} s, "
        f"ratio {conveyor / psql:.2f}"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
