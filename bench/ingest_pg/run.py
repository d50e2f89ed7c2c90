"""Benchmark: Conveyor's binary COPY encoder (pgcopy) against pgpq and ADBC ingest.

    /tmp/bench-venv/bin/python bench/ingest_pg/run.py --scale 1 --runs 3

1. TPC-H lineitem at ``--scale`` as Parquet parts (``bench/load_pg.py``'s generator, once,
   untimed), rewritten once as a Conveyor extract stores them (the design's Arrow types:
   ``string`` where tpchgen writes ``string_view``; zstd; 128K-row row groups); the table is
   created with Conveyor's DDL of bench/load_pg.py's design.
2. ``--runs`` rounds, the tools interleaved (order rotated each round). Each load runs in
   its own process (``bench/dag/measure.py``'s ``run_timed``; peak RSS is the worker's
   ``VmHWM``, since ``wait4``'s ``ru_maxrss`` carries the parent's over ``exec``) into
   a freshly created table after a CHECKPOINT. The worker times the load itself (connection
   opened before; read Parquet, encode, COPY, commit) and reports its own CPU seconds over
   the load (all threads) and those of its server backend (``/proc/<pid>/stat``; the server
   is local). The three loaders are in bench/ingest_pg/tools.py.
3. After each load every row is checked: ``count(*)`` and ``sum(hashtext(row::text))`` must
   equal those of the first load (Conveyor's).
4. Encoding alone, for the two encoders (``--no-encode`` skips it): each process reads all
   batches into memory first (untimed), then times ``encode()`` of every batch on one
   thread (``time.thread_time`` for its CPU), without a server; also the bytes produced.
5. Exactness (bench/ingest_pg/exact.py): edge values of every design type, loaded by each
   tool and read back with psycopg; data that must be refused, too.

pgpq is not a Conveyor dependency. It runs from a throw-away environment, which this script
re-runs itself under when it exists (``--python``, default /tmp/bench-venv/bin/python):

    /work/main/.venv/bin/python -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install -r requirements.lock pgpq

Without it, pgpq is skipped with that message.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BENCH_PYTHON = Path(os.environ.get("BENCH_PYTHON", "/tmp/bench-venv/bin/python"))

if "--worker" not in sys.argv and BENCH_PYTHON.exists() and Path(sys.executable) != BENCH_PYTHON:
    os.execv(str(BENCH_PYTHON), [str(BENCH_PYTHON), __file__, *sys.argv[1:]])

sys.path[:0] = [str(ROOT), str(HERE), str(ROOT / "bench"), str(ROOT / "bench" / "dag")]
import load_pg  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from measure import LoadMonitor, Sample, Series, command_line, interleave, machine_facts, run_timed, table  # noqa: E402
from tools import PGPQ_MISSING, TOOLS, backend_cpu, connect, load, pgpq_available  # noqa: E402

ADMIN_DSN = load_pg.ADMIN_DSN
TABLE = "bench.lineitem"
CHECK = "SELECT count(*), sum(hashtext(l::text)::bigint) FROM bench.lineitem AS l"


def lake_parts(files: list[Path], folder: Path) -> list[Path]:
    """The parts as a Conveyor extract writes them (once): the design's Arrow types (``string``,
    not tpchgen's ``string_view``), zstd, row groups of 128K rows."""
    from conveyor.design.types import parse_type

    schema = pa.schema([pa.field(name, parse_type(kind).arrow, nullable=False) for name, kind in load_pg.COLUMNS])
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in files:
        target = folder / path.name
        if not target.exists():
            temp = target.with_suffix(".tmp")
            table = pq.read_table(path).cast(schema)
            pq.write_table(table, temp, compression="zstd", row_group_size=128 * 1024, store_schema=True)
            temp.rename(target)
        out.append(target)
    return out


def worker(tool: str, dsn: str, files: list[str]) -> dict[str, Any]:
    paths = [Path(f) for f in files]
    schema = pq.read_schema(paths[0])  # the manifest's schema: the parts' own
    con, pid = connect(tool, dsn)
    server_before = backend_cpu(pid)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    rows = load(tool, con, TABLE, paths, schema)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    server = backend_cpu(pid) - server_before
    con.close()
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    return {"seconds": seconds, "cpu": cpu, "server_cpu": server, "rows": rows, "peak_rss_mb": load_pg.peak_rss_mb()}


def encode_worker(tool: str, files: list[str]) -> dict[str, Any]:
    """Encode every batch in memory (read beforehand, untimed): the encoder alone, one thread."""
    from tools import PgpqEncoder, batches

    from conveyor.warehouse.postgres.binary import CopyEncoder
    from conveyor.warehouse.postgres.binary_layout import PgColumn

    paths = [Path(f) for f in files]
    schema = pq.read_schema(paths[0])
    columns = [PgColumn(name, TYPENAMES[kind.split("(")[0]], _typmod(kind)) for name, kind in load_pg.COLUMNS]
    data = list(batches(paths, schema))
    encoder: Any = CopyEncoder(columns, schema) if tool == "conveyor" else PgpqEncoder(columns, schema)
    size = 0
    cpu = time.thread_time()
    started = time.perf_counter()
    for batch in data:
        size += sum(buffer.size for buffer in encoder.encode(batch))
    if tool == "pgpq":
        size += len(encoder.finish())
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu": time.thread_time() - cpu,
        "bytes": size,
        "rows": sum(len(b) for b in data),
        "peak_rss_mb": load_pg.peak_rss_mb(),
    }


TYPENAMES = {"bigint": "int8", "integer": "int4", "decimal": "numeric", "text": "text", "date": "date"}


def _typmod(kind: str) -> int:
    if not kind.startswith("decimal("):
        return -1
    precision, scale = (int(x) for x in kind[len("decimal(") : -1].split(","))
    return ((precision << 16) | scale) + 4


def one_run(tool: str, dsn: str, files: list[Path], log_dir: Path) -> tuple[Sample, dict[str, Any]]:
    import psycopg

    from conveyor.warehouse import ddl

    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("DROP SCHEMA IF EXISTS bench CASCADE")
        con.execute("CREATE SCHEMA bench")
        con.execute(ddl.create_table(load_pg.design(TABLE), "postgres").encode())
        con.execute("CHECKPOINT")
    log = log_dir / f"{tool}-{uuid.uuid4().hex[:6]}.log"
    process = run_timed(
        [sys.executable, __file__, "--worker", tool, "--dsn", dsn, *map(str, files)],
        log=log,
        env={"PYTHONPATH": str(ROOT)},
    )
    text = log.read_text()
    if process.rc:
        print(f"  {tool} failed:\n{text[-2000:]}", flush=True)
        return process, {}
    result = json.loads(text.strip().splitlines()[-1])
    with psycopg.connect(dsn, autocommit=True) as con:
        count, digest = con.execute(CHECK).fetchone()  # type: ignore[misc]
    result.update(
        process_wall=process.wall, process_cpu=process.cpu, rss_mb=process.rss_mb, check=[int(count), str(digest)]
    )
    # the table's figures: the load's own wall and CPU seconds, the process's peak RSS
    return Sample(result["seconds"], result["peak_rss_mb"], 0, result["cpu"]), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.1, help="TPC-H scale factor (default 0.1; 1 for the figures)")
    parser.add_argument("--runs", type=int, default=3, help="rounds (default 3); medians are reported")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated, of %(default)s")
    parser.add_argument("--no-exact", action="store_true", help="skip the exactness check")
    parser.add_argument("--no-encode", action="store_true", help="skip the encode-only runs")
    parser.add_argument("--dsn", default=ADMIN_DSN, help="the server (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "conveyor-bench")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.worker and options.worker.startswith("encode:"):
        print(json.dumps(encode_worker(options.worker.removeprefix("encode:"), options.files)), flush=True)
        return
    if options.worker:
        print(json.dumps(worker(options.worker, options.dsn, options.files)), flush=True)
        return

    import psycopg

    tools = [t.strip() for t in options.tools.split(",") if t.strip()]
    if "pgpq" in tools and not pgpq_available():
        print(f"skipping pgpq: {PGPQ_MISSING}\n", flush=True)
        tools.remove("pgpq")
    data = options.data / f"sf{options.scale:g}"
    data.mkdir(parents=True, exist_ok=True)
    files = lake_parts(load_pg.parquet_parts(options.scale, data), data / "lineitem-lake")
    facts = machine_facts()
    database = f"conveyor_ingest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(options.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"'.encode())
        server = admin.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    dsn = psycopg.conninfo.make_conninfo(options.dsn, dbname=database)
    series = {tool: Series(tool, tool) for tool in tools}
    details: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
    reference: list[Any] = []
    verdicts: dict[str, dict[str, str]] = {}
    try:
        if not options.no_exact:
            import exact

            verdicts = exact.check(dsn, tools)
            print("exactness (edge values of every design type, read back with psycopg):\n")
            print(exact.markdown(verdicts, tools) + "\n", flush=True)
        log_dir = Path(tempfile.mkdtemp(prefix="conveyor-ingest-"))

        def measure_one(tool: str, run: int) -> None:
            sample, result = one_run(tool, dsn, files, log_dir)
            if result:
                if not reference:
                    reference.extend(result["check"])
                result["same_rows"] = result["check"] == reference
                if not result["same_rows"]:
                    sample.rc = 1
                    print(f"  {tool}: the loaded rows differ: {result['check']} against {reference}", flush=True)
            series[tool].samples.append(sample)
            details[tool].append(result)
            print(
                f"run {run} {tool:>8}: load {sample.wall:6.2f} s  CPU {sample.cpu:6.2f} s  "
                f"server CPU {result.get('server_cpu', float('nan')):6.2f} s  peak RSS {sample.rss_mb:6.0f} MB",
                flush=True,
            )

        encoding = {tool: Series(tool, tool) for tool in tools if tool != "adbc"}
        encoded: dict[str, list[dict[str, Any]]] = {tool: [] for tool in encoding}

        def encode_one(tool: str, run: int) -> None:
            log = log_dir / f"encode-{tool}-{uuid.uuid4().hex[:6]}.log"
            process = run_timed([sys.executable, __file__, "--worker", f"encode:{tool}", *map(str, files)], log=log)
            if process.rc:
                print(f"  encode {tool} failed:\n{log.read_text()[-2000:]}", flush=True)
                encoding[tool].samples.append(process)
                return
            result = json.loads(log.read_text().strip().splitlines()[-1])
            encoded[tool].append(result)
            encoding[tool].samples.append(Sample(result["seconds"], result["peak_rss_mb"], 0, result["cpu"]))
            print(
                f"run {run} encode {tool:>8}: {result['seconds']:6.2f} s  CPU {result['cpu']:6.2f} s  "
                f"{result['bytes'] / 1e6:8.1f} MB of COPY data  peak RSS {result['peak_rss_mb']:6.0f} MB",
                flush=True,
            )

        with LoadMonitor() as monitor:
            interleave(options.runs, tools, measure_one)
            if not options.no_encode:
                interleave(options.runs, list(encoding), encode_one)
    finally:
        with psycopg.connect(options.dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'.encode())

    rows = [series[t] for t in tools]
    print(f"\n{command_line()}")
    print(
        f"TPC-H lineitem SF{options.scale:g}: {reference[0] if reference else '?'} rows, {len(files)} Parquet part(s)"
    )
    print(f"PostgreSQL {server}; {facts['nproc']} CPUs ({facts['cpu']}); memory {facts['memory']}")
    print(f"1-minute load average: {monitor.summary()}\n")
    print(table(rows, "conveyor"))

    def median(tool: str, key: str) -> float | None:
        values = [r[key] for r in details[tool] if r]
        return statistics.median(values) if values else None

    print("\n| tool | median server backend CPU (s) | median client + server CPU (s) | all rows identical |")
    print("|---|---|---|---|")
    for tool in tools:
        server_cpu, cpu = median(tool, "server_cpu"), median(tool, "cpu")
        same = all(r.get("same_rows") for r in details[tool]) and bool(details[tool])
        total = f"{server_cpu + cpu:.2f}" if server_cpu is not None and cpu is not None else "-"
        print(f"| {tool} | {server_cpu if server_cpu is None else f'{server_cpu:.2f}'} | {total} | {same} |")
    if not options.no_encode and encoding:
        print("\nEncoding alone (batches in memory, one thread, no server; peak RSS includes the data):\n")
        print(table(list(encoding.values()), "conveyor"))
        for tool, results in encoded.items():
            if results:
                size = results[-1]["bytes"]
                print(
                    f"- {tool}: {size / 1e6:.1f} MB of COPY data ({size / max(results[-1]['rows'], 1):.1f} bytes a row)"
                )
    summary = {
        "command": command_line(),
        "scale": options.scale,
        "runs": options.runs,
        "server": server,
        "machine": facts,
        "load_average": monitor.samples,
        "results": details,
        "encode_only": encoded if not options.no_encode else {},
        "exactness": verdicts,
    }
    out = HERE / f"results-sf{options.scale:g}.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"\n(details in {out})")


if __name__ == "__main__":
    main()
