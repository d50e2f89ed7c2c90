"""The peer tools of the extract benchmark, one per invocation (run by ``run.py``).

Runs in ``bench/extract/.venv-peers``. Each tool reads the whole upstream
``<schema>.lineitem`` and writes Parquet into ``--out``, the way its documentation shows,
with its default settings (compression, batch sizes, threads):

* ``duckdb``: DuckDB 1.4.4 with the postgres / mysql scanner extension from the
  ``duckdb-ext-postgres`` / ``duckdb-ext-mysql`` wheels, loaded from site-packages with
  autoinstall off (no network), then ``COPY (SELECT * FROM db.<schema>.lineitem) TO
  'lineitem.parquet' (FORMAT parquet)``.
* ``connectorx``: ``connectorx.read_sql(..., return_type="arrow")`` then
  ``pyarrow.parquet.write_table``.
* ``dlt``: ``sql_table(..., backend="pyarrow")`` into the ``filesystem`` destination with
  ``loader_file_format="parquet"``.

``peers.py check-extensions`` loads both scanner extensions offline and fails if it cannot.

Usage::

    .venv-peers/bin/python peers.py duckdb --engine postgres --schema tpch_sf1 --out /tmp/x
"""

from __future__ import annotations

import argparse
import json
import os
import sysconfig
import time
from pathlib import Path
from typing import Any

PG_URL = "postgresql://postgres@127.0.0.1:5432/conveyor_bench"
PG_LIBPQ = "host=127.0.0.1 port=5432 user=postgres dbname=conveyor_bench"


def my_url(schema: str) -> str:
    return f"mysql://root@127.0.0.1:3306/{schema}"


def extension_dir() -> str:
    """Where the duckdb-ext-* wheels put ``v<version>/<platform>/<name>.duckdb_extension``."""
    return os.path.join(sysconfig.get_paths()["purelib"], "duckdb_ext", "extensions")


def duckdb_connect(extension: str) -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET extension_directory = ?", [extension_dir()])
    con.execute(f"LOAD {extension}")
    return con


def attach_upstream(engine: str, schema: str) -> tuple[Any, str]:
    """A DuckDB connection with the upstream database attached read-only, and lineitem's name in it."""
    if engine == "postgres":
        con = duckdb_connect("postgres")
        con.execute(f"ATTACH '{PG_LIBPQ}' AS up (TYPE postgres, READ_ONLY)")
    else:
        con = duckdb_connect("mysql")
        con.execute(f"ATTACH 'host=127.0.0.1 port=3306 user=root database={schema}' AS up (TYPE mysql, READ_ONLY)")
    return con, f"up.{schema}.lineitem"


def run_duckdb(engine: str, schema: str, out: Path) -> dict[str, Any]:
    target = out / "lineitem.parquet"
    con, table = attach_upstream(engine, schema)
    con.execute(f"COPY (SELECT * FROM {table}) TO '{target}' (FORMAT parquet)")
    threads = con.execute("SELECT current_setting('threads')").fetchone()
    con.close()
    return {"threads": threads[0] if threads else None}


def run_connectorx(engine: str, schema: str, out: Path) -> dict[str, Any]:
    import connectorx
    import pyarrow.parquet as pq

    if engine == "postgres":
        url, query = PG_URL, f"SELECT * FROM {schema}.lineitem"
    else:
        url, query = my_url(schema), "SELECT * FROM lineitem"
    table = connectorx.read_sql(url, query, return_type="arrow")
    pq.write_table(table, out / "lineitem.parquet")
    return {"arrow_bytes": table.nbytes, "schema": [f"{f.name}: {f.type}" for f in table.schema]}


def run_dlt(engine: str, schema: str, out: Path) -> dict[str, Any]:
    # no telemetry, no network, state and config kept inside the temp folder
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ.setdefault("DLT_DATA_DIR", str(out / ".dlt-data"))
    import dlt
    from dlt.sources.sql_database import sql_table

    if engine == "postgres":
        credentials, upstream_schema = "postgresql+psycopg2://postgres@127.0.0.1:5432/conveyor_bench", schema
    else:
        credentials, upstream_schema = f"mysql+pymysql://root@127.0.0.1:3306/{schema}", None
    resource = sql_table(credentials=credentials, table="lineitem", schema=upstream_schema, backend="pyarrow")
    pipeline = dlt.pipeline(
        pipeline_name="bench_extract",
        pipelines_dir=str(out / ".dlt-pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=(out / "lake").as_uri()),
        dataset_name="bench",
    )
    info = pipeline.run(resource, loader_file_format="parquet")
    return {"load_packages": len(info.load_packages), "dlt_version": dlt.__version__}


def check_extensions() -> None:
    for name in ("postgres", "mysql"):
        con = duckdb_connect(name)
        row = con.execute(
            "SELECT install_path FROM duckdb_extensions() WHERE loaded AND extension_name = ?", [f"{name}_scanner"]
        ).fetchone()
        if not row:
            raise SystemExit(f"the {name} scanner extension did not load from {extension_dir()}")
        print(f"duckdb {name} scanner: {row[0]}")


TOOLS = {"duckdb": run_duckdb, "connectorx": run_connectorx, "dlt": run_dlt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tool", choices=[*TOOLS, "check-extensions"])
    parser.add_argument("--engine", choices=["postgres", "mysql"], default="postgres")
    parser.add_argument("--schema", default="tpch_sf1", help="the upstream schema holding lineitem")
    parser.add_argument("--out", type=Path, help="an empty folder for the Parquet output")
    args = parser.parse_args()
    if args.tool == "check-extensions":
        check_extensions()
        return
    if args.out is None:
        parser.error("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    detail = TOOLS[args.tool](args.engine, args.schema, args.out)
    print(json.dumps({"tool": args.tool, "inner_seconds": round(time.perf_counter() - started, 3), **detail}))


if __name__ == "__main__":
    main()
