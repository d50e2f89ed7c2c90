"""Compare S3 clients for the object-store lake: write and read one ~200 MB Parquet part.

Starts a moto S3 server on loopback (``python -m moto.server``), makes a lineitem-like
Parquet file locally once (``--rows``, default 3,000,000 rows, about 200 MB with zstd), then
runs each candidate in a fresh subprocess so ``ru_maxrss`` is that candidate's own peak:

* ``local`` - the baseline: a local file (what the lake does today)
* ``pyarrow`` - ``pyarrow.fs.S3FileSystem``: ParquetWriter straight into ``open_output_stream``
  (multipart upload as it goes), ``ParquetFile`` over ``open_input_file`` (ranged GETs)
* ``obstore`` - ``obstore.open_writer`` (multipart in ``buffer_size`` chunks) as the
  ParquetWriter's sink, ``obstore.open_reader`` (ranged GETs) as the ParquetFile's source
* ``boto3`` - stage: ParquetWriter to a local temp file, ``upload_file`` (multipart,
  threads); read: ``download_file`` to a temp file, then ParquetFile over it

Write: stream the source file's row groups (``iter_batches``) into a ParquetWriter on the
target. Read: stream the target's batches and count rows. Each candidate is configured
only by the AWS environment variables (``AWS_ENDPOINT_URL`` etc.), as the lake will be.

Usage::

    .venv/bin/python bench/lake_s3/bench.py                       # every candidate
    .venv/bin/python bench/lake_s3/bench.py --rows 300000 --candidates local,pyarrow

moto keeps objects in its own memory and is a Flask app in one Python process, so absolute
times are moto's as much as the client's; the comparison is between clients against the
same server. The numbers in docs/architecture.md ("The object-store lake") come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tests"))

CANDIDATES = ("local", "pyarrow", "obstore", "boto3")


def make_source(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(16)
    chunk = 500_000
    schema = pa.schema(
        [
            ("l_orderkey", pa.int64()),
            ("l_partkey", pa.int64()),
            ("l_quantity", pa.decimal128(15, 2)),
            ("l_extendedprice", pa.decimal128(15, 2)),
            ("l_discount", pa.decimal128(15, 2)),
            ("l_returnflag", pa.string()),
            ("l_shipdate", pa.date32()),
            ("l_updated", pa.timestamp("us", tz="UTC")),
            ("l_shipinstruct", pa.string()),
            ("l_comment", pa.string()),
        ]
    )
    words = np.array(["furiously", "quickly", "carefully", "ironic", "pending", "final", "deposits", "accounts"])
    with pq.ParquetWriter(path, schema, compression="zstd", store_decimal_as_integer=True) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            cents = rng.integers(0, 10_000_000, n)
            comment = [" ".join(w) for w in words[rng.integers(0, len(words), (n, 4))]]
            arrays = [
                pa.array(np.arange(start, start + n) // 4),
                pa.array(rng.integers(0, 200_000, n)),
                pa.array(rng.integers(1, 50, n)).cast(pa.decimal128(21, 2)).cast(pa.decimal128(15, 2)),
                pa.array([Decimal(int(c)).scaleb(-2) for c in cents], pa.decimal128(15, 2)),
                pa.array(rng.integers(0, 10, n)).cast(pa.decimal128(21, 2)).cast(pa.decimal128(15, 2)),
                pa.array(np.array(["A", "N", "R"])[rng.integers(0, 3, n)]),
                pa.array(rng.integers(8000, 11000, n).astype("int32")).cast(pa.date32()),
                pa.array(rng.integers(0, 2**50, n)).cast(pa.timestamp("us", tz="UTC")),
                pa.array(
                    np.array(["DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN"])[rng.integers(0, 4, n)]
                ),
                pa.array(comment),
            ]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema), row_group_size=128 * 1024)


def peak_rss_kib() -> int:
    """This process's peak RSS (``VmHWM``; ``ru_maxrss`` would count the parent's RSS at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class _Sink:
    """obstore's WritableFile as the file object Arrow expects (its ``closed`` is a method)."""

    def __init__(self, handle: object) -> None:
        self.handle = handle
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return self.handle.write(data)  # type: ignore[attr-defined]

    def flush(self) -> None:
        pass  # obstore's flush uploads a part; the writer flushes once per page

    def tell(self) -> int:
        return self.size

    closed = False

    def close(self) -> None:
        pass


class _Source:
    """obstore's ReadableFile as the file object Arrow expects (it has no ``closed``)."""

    closed = False

    def __init__(self, handle: object) -> None:
        self.handle = handle

    def read(self, size: int = -1) -> bytes:
        return bytes(self.handle.read(None if size < 0 else size))  # type: ignore[attr-defined]

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self.handle.seek(offset, whence))  # type: ignore[attr-defined]

    def tell(self) -> int:
        return int(self.handle.tell())  # type: ignore[attr-defined]

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.handle.close()  # type: ignore[attr-defined]


def run_one(candidate: str, op: str, source: str, bucket: str, key: str) -> dict[str, object]:
    """One candidate, one operation, in this (fresh) process."""
    import pyarrow.parquet as pq

    def write_into(sink: object) -> None:
        reader = pq.ParquetFile(source)
        with pq.ParquetWriter(sink, reader.schema_arrow, compression="zstd", store_decimal_as_integer=True) as w:
            for batch in reader.iter_batches(batch_size=128 * 1024):
                w.write_batch(batch, row_group_size=128 * 1024)

    def read_from(src: object) -> int:
        return sum(b.num_rows for b in pq.ParquetFile(src).iter_batches(batch_size=128 * 1024))

    wall, cpu = time.perf_counter(), time.process_time()
    rows = None
    if candidate == "local":
        path = Path(tempfile.gettempdir()) / f"lake-bench-{key.replace('/', '_')}"
        if op == "write":
            write_into(str(path))
        else:
            rows = read_from(str(path))
            path.unlink()
    elif candidate == "pyarrow":
        from pyarrow import fs

        # keys and region from the environment; Arrow ignores AWS_ENDPOINT_URL, so it is passed on
        s3 = fs.S3FileSystem(endpoint_override=os.environ.get("AWS_ENDPOINT_URL"))
        if op == "write":
            with s3.open_output_stream(f"{bucket}/{key}") as out:
                write_into(out)
        else:
            with s3.open_input_file(f"{bucket}/{key}") as src:
                rows = read_from(src)
    elif candidate == "obstore":
        import obstore
        from obstore.store import S3Store

        store = S3Store(bucket, client_options={"allow_http": True})
        if op == "write":
            with obstore.open_writer(store, key, buffer_size=16 * 1024 * 1024) as out:
                write_into(_Sink(out))
        else:
            rows = read_from(_Source(obstore.open_reader(store, key, buffer_size=8 * 1024 * 1024)))
    elif candidate == "boto3":
        import boto3

        client = boto3.client("s3")
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / "part.parquet"
            if op == "write":
                write_into(str(staged))
                client.upload_file(str(staged), bucket, key)
            else:
                client.download_file(bucket, key, str(staged))
                rows = read_from(str(staged))
    else:
        raise SystemExit(f"unknown candidate {candidate}")
    return {
        "candidate": candidate,
        "op": op,
        "wall_s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "peak_rss_mb": round(peak_rss_kib() / 1024, 1),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--one", nargs=5, metavar=("CANDIDATE", "OP", "SOURCE", "BUCKET", "KEY"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return

    from testkit.s3 import moto_server

    cache = Path(tempfile.gettempdir()) / f"lake-bench-source-{args.rows}.parquet"
    if not cache.exists():
        make_source(cache.with_suffix(".tmp"), args.rows)
        cache.with_suffix(".tmp").rename(cache)
    print(f"source: {cache} ({cache.stat().st_size / 2**20:.0f} MiB, {args.rows:,} rows)", file=sys.stderr)
    with moto_server() as server:
        bucket = server.create_bucket()
        env = {**os.environ, **server.env}
        results = []
        for _ in range(args.repeat):
            for candidate in args.candidates.split(","):
                key = f"bench/{candidate}/{uuid.uuid4().hex}.parquet"
                for op in ("write", "read"):
                    out = subprocess.run(
                        [sys.executable, __file__, "--one", candidate, op, str(cache), bucket, key],
                        env=env,
                        capture_output=True,
                        text=True,
                    )
                    if out.returncode:
                        raise SystemExit(f"{candidate} {op} failed:\n{out.stderr[-3000:]}")
                    result = json.loads(out.stdout)
                    results.append(result)
                    print(json.dumps(result), flush=True)
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs", file=sys.stderr)


if __name__ == "__main__":
    main()
