"""Why loads from an S3 lake cost more: the two ways Conveyor reads parts, with their options.

Extracts ``tpch_sf<scale>.lineitem`` once into a local lake (as ``run.py`` does), uploads its
parts to a moto server on loopback, then reads them in a fresh subprocess per mode, each
reporting its wall and CPU seconds and peak RSS, and this script adds moto's CPU seconds:

* ``duck-readparquet`` - local parts, ``CREATE TABLE AS SELECT * FROM read_parquet([...])``
  (how DuckDB loads from a local lake);
* ``duck-dataset-local`` / ``duck-dataset-s3`` - the same from a registered
  ``pyarrow.dataset`` (how DuckDB loads from an S3 lake), over local files / over S3;
* ``duck-scanner-s3`` - a registered ``Scanner`` of that dataset with
  ``batch_readahead=2, fragment_readahead=1`` (Arrow's defaults are 16 and 4);
* ``pq-local`` / ``pq-s3`` / ``pq-s3-prebuffer`` - ``ParquetFile(..., buffer_size=1 MiB)``
  and ``iter_batches`` over every part (how the PostgreSQL COPY encoder reads them), with
  ``pre_buffer=False`` (what the encoder uses) and ``pre_buffer=True`` (ranges coalesced).

Usage::

    .venv/bin/python bench/lake_s3/scan.py --scale 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402

MODES = [
    "duck-readparquet",
    "duck-dataset-local",
    "duck-dataset-s3",
    "duck-scanner-s3",
    "pq-local",
    "pq-s3",
    "pq-s3-prebuffer",
]

CHILD = r"""
import json, os, resource, sys, time
import pyarrow.dataset as ds, pyarrow.fs as pafs, pyarrow.parquet as pq
mode, local, keys = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
s3 = pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], region=os.environ["AWS_REGION"])
started = time.perf_counter()
rows = 0
if mode.startswith("duck"):
    import duckdb
    con = duckdb.connect()
    if mode == "duck-readparquet":
        source = f"read_parquet({local!r})"
    else:
        data = ds.dataset(keys, format="parquet", filesystem=s3) if mode.endswith("s3") else ds.dataset(local)
        if mode == "duck-scanner-s3":
            data = ds.Scanner.from_dataset(data, batch_readahead=2, fragment_readahead=1)
        con.register("source", data)
        source = "source"
    con.execute(f"CREATE TABLE t AS SELECT * FROM {source}")
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
else:
    fs, paths = (s3, keys) if "s3" in mode else (pafs.LocalFileSystem(), local)
    for path in paths:
        with fs.open_input_file(path) as f, pq.ParquetFile(
            f, pre_buffer=mode.endswith("prebuffer"), buffer_size=1 << 20
        ) as parquet:
            for batch in parquet.iter_batches(batch_size=65536, use_threads=True):
                rows += batch.num_rows
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rows": rows, "wall": time.perf_counter() - started,
                  "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    schema = run.schema_name(args.scale)
    work = Path(tempfile.mkdtemp(prefix="bench-lake-scan-"))
    state = work / "s3-local"
    server = run.s3_local.start(state)
    try:
        server.create_bucket(run.BUCKET)
        mine = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env = {**mine, **server.env, "BENCH_PG": f"{run.PG}/{run.BENCH_DB}", "BENCH_WH": "unused"}
        project = run.make_project(work / "local", "lake", schema, env)
        subprocess.run([run.conveyor_bin(), "-q", "extract"], cwd=project, env=env, check=True)
        local = sorted(str(p) for p in (project / "lake").rglob("*.parquet"))
        import pyarrow.fs as pafs

        for key in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[key]
        os.environ.update(server.env)  # pyarrow's S3 filesystem reads its keys from here
        s3 = pafs.S3FileSystem(endpoint_override=server.endpoint, region=server.env["AWS_REGION"])
        keys = []
        for path in local:
            key = f"{run.BUCKET}/scan/{Path(path).name}"
            with open(path, "rb") as source, s3.open_output_stream(key) as target:
                shutil.copyfileobj(source, target, 8 << 20)
            keys.append(key)
        print("| mode | wall s | CPU s | moto CPU s | peak RSS MB |\n|---|---:|---:|---:|---:|")
        for mode in MODES:
            before = run.s3_local.cpu_seconds(server.pid)
            done = subprocess.run(
                [sys.executable, "-c", CHILD, mode, json.dumps(local), json.dumps(keys)],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
            moto = run.s3_local.cpu_seconds(server.pid) - before
            got = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {mode} | {got['wall']:.1f} | {got['cpu']:.1f} | {moto:.1f} | {got['rss_mb']:.0f} |", flush=True)
    finally:
        run.s3_local.stop(state)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
