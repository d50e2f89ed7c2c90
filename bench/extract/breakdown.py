"""Where Conveyor's extract time goes: its read path cut into stages, one stream, CPU seconds.

Runs in Conveyor's own ``.venv`` (it imports Conveyor's sources and lake writer). Each stage
reads the whole upstream ``tpch_sf<scale>.lineitem`` once, in a fresh subprocess, and
reports wall seconds, CPU seconds of the process (all threads) and peak RSS. On a shared,
noisy machine the CPU seconds are the stable number: a stage's cost is its CPU minus the
previous stage's.

Stages (``--stages``):

* ``startup``: import Conveyor's CLI, nothing else.
* ``wire``: the source's raw stream (PostgreSQL: ADBC ``COPY ... (FORMAT BINARY)`` -> Arrow;
  MySQL: connectorx ``arrow_stream``) of the exact statement Conveyor builds, no conversion.
* ``read``: ``Source.read``: the raw stream plus the exact-type conversion and re-batching.
* ``read+parquet-none`` / ``-snappy`` / ``-zstd``: ``read`` into Conveyor's ``PartWriter``
  (1M-row parts, SHA-256 of every byte, fsync) with that compression; ``-zstd`` is what
  ``conveyor extract`` does.
* ``read+pq-zstd-nohash``: ``read`` into a plain ``pq.ParquetWriter`` (zstd, one file, no
  hash, no fsync).

It uses the sources' internal ``_plan``/``build_sql``/``_stream``: when those change, adapt it.

Usage::

    .venv/bin/python bench/extract/breakdown.py --engine postgres --scale 1
    .venv/bin/python bench/extract/breakdown.py --engine mysql --stages wire,read --batch-rows 131072
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE))

STAGES = [
    "startup",
    "wire",
    "read",
    "read+parquet-none",
    "read+parquet-snappy",
    "read+parquet-zstd",
    "read+pq-zstd-nohash",
]
PG_DSN = "postgresql://postgres@127.0.0.1:5432/conveyor_bench"


def _request(engine: str, schema: str, batch_rows: int) -> tuple[Any, Any]:
    from prepare import COLUMNS

    from conveyor.design.types import parse_type
    from conveyor.sources.base import ReadRequest

    design = {"char(1)": "text", "char(25)": "text", "char(10)": "text", "varchar(44)": "text"}
    columns = tuple((name, parse_type(design.get(t, t))) for name, t in COLUMNS)
    if engine == "postgres":
        from conveyor.sources.postgres import PostgresSource

        source: Any = PostgresSource("bench", PG_DSN)
    else:
        from conveyor.sources.mysql import MySQLSource

        source = MySQLSource("bench", f"mysql://root@127.0.0.1:3306/{schema}")
    return source, ReadRequest(schema, "lineitem", columns, batch_rows=batch_rows)


def _batches(stage: str, engine: str, schema: str, batch_rows: int) -> Iterator[Any]:
    source, request = _request(engine, schema, batch_rows)
    with source:
        if stage == "wire":
            statement = source.build_sql(request, source._plan(request))
            if engine == "postgres":
                yield from source._stream(statement, None)
            else:
                yield from source._stream(statement, batch_rows)
        else:
            yield from source.read(request)


def _rss_mib() -> int:
    """The current (not peak) RSS of this process."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() // 2**20


def run_stage(stage: str, engine: str, schema: str, batch_rows: int) -> dict[str, Any]:
    started = time.perf_counter()
    cpu0 = time.process_time()
    rows = batches = 0
    # the current RSS every 2M rows: a rising series means memory grows with the table
    rss_series: list[int] = []

    def count(batch: Any) -> None:
        nonlocal rows, batches
        if rows // 2_000_000 != (rows + batch.num_rows) // 2_000_000:
            rss_series.append(_rss_mib())
        rows += batch.num_rows
        batches += 1

    if stage == "startup":
        import conveyor.cli.main  # noqa: F401
    elif stage in ("wire", "read"):
        for batch in _batches(stage, engine, schema, batch_rows):
            count(batch)
    else:
        import pyarrow.parquet as pq

        from conveyor.lake.parts import PartWriter

        _source, request = _request(engine, schema, batch_rows)
        with tempfile.TemporaryDirectory(prefix="breakdown-") as tmp:
            if stage.startswith("read+parquet-"):
                writer = PartWriter(Path(tmp), request.arrow_schema, compression=stage.rsplit("-", 1)[1])
                for batch in _batches("read", engine, schema, batch_rows):
                    writer.write(batch)
                    count(batch)
                writer.close()
            else:
                with pq.ParquetWriter(Path(tmp) / "x.parquet", request.arrow_schema, compression="zstd") as plain:
                    for batch in _batches("read", engine, schema, batch_rows):
                        plain.write_batch(batch)
                        count(batch)
    return {
        "stage": stage,
        "rows": rows,
        "batches": batches,
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu0, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_mib_every_2m_rows": rss_series,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["postgres", "mysql"], default="postgres")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--batch-rows", type=int, default=65_536)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from prepare import schema_name

    schema = schema_name(args.scale)
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.engine, schema, args.batch_rows)))
        return
    print(f"{args.engine} {schema}.lineitem, batch_rows {args.batch_rows}, one stream")
    print(f"{'stage':22} {'rows':>10} {'batches':>8} {'wall s':>7} {'CPU s':>6} {'peak RSS MiB':>13}  RSS every 2M")
    for stage in (s for s in args.stages.split(",") if s):
        argv = [sys.executable, __file__, "--engine", args.engine, "--scale", f"{args.scale:g}"]
        argv += ["--batch-rows", str(args.batch_rows), "--stage", stage]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode:
            print(f"{stage:22} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{stage:22} {r['rows']:>10,} {r['batches']:>8} {r['seconds']:>7} {r['cpu_seconds']:>6}"
            f" {r['peak_rss_mib']:>13}  {r['rss_mib_every_2m_rows']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
