"""Benchmark: Conveyor's load of Parquet into PostgreSQL against ``psql \\copy`` of the same rows as CSV.

    /work/main/.venv/bin/python bench/load_pg.py --scale 1 --runs 3

1. Setup, once and untimed, in a child process: TPC-H lineitem at the scale factor as
   Parquet parts with tpchgen-cli (installed into this Python environment with pip when
   missing) and the same rows as one CSV file; a database on the server of ``--dsn``.
2. The tools, each a whole process on the same boundary: from the rows in files to a
   published, analysed table (a table ready for queries):
   - ``psql``: ``psql -f load.sql``: ``CREATE SCHEMA``, ``CREATE TABLE`` (Conveyor's DDL of the
     design), ``\\copy ... CSV``, ``ANALYZE``;
   - ``conveyor``: ``python bench/load_pg.py --worker conveyor ...``: interpreter start,
     imports, a Conveyor manifest of the Parquet parts, ``PostgresWarehouse.begin``,
     ``load_table`` (``CREATE TABLE``, binary ``COPY ... FREEZE``, ``ANALYZE``), ``publish``.
   Timed by bench/dag/measure.py's ``run_timed(server="postgres")``: wall, client CPU (user +
   system of the process and its children), peak RSS (``wait4``), and the PostgreSQL server's
   CPU seconds over the run. Runs are interleaved with the order rotated (``interleave``),
   after an untimed warm-up of each tool; before every run the loaded schemas are dropped and
   a CHECKPOINT is taken (untimed).
3. After every run the loaded table is checked: row count and a checksum over all columns
   (the sum of the first 60 bits of the md5 of every row's text), equal for every run of
   every tool.
4. Prints a Markdown table (medians; ratios to psql) and a JSON line. The driver runs SQL
   through psql only, so its own resident set (the floor of what ``wait4`` reports for the
   processes it starts) stays small.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "dag"))

from measure import LoadMonitor, Sample, Series, interleave, machine_facts, run_timed, server_table  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SCHEMAS = {"psql": "bench_psql", "conveyor": "bench_conveyor"}
TOOLS = ["conveyor", "psql"]

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


# ---------------------------------------------------------------------------- the tools


def peak_rss_mb() -> float:
    """VmHWM of this process (the kernel's high-water mark of resident memory); bench/ingest_pg uses it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_conveyor(dsn: str, schema: str, files: list[str]) -> None:
    """Conveyor's whole load of the Parquet parts into ``schema.lineitem``, published."""
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
    build = PostgresWarehouse("bench", dsn).begin([schema], run_id="bench")
    try:
        build.load_table(design(f"{schema}.lineitem"), manifest)
        build.publish()
    except BaseException:
        build.abort()
        raise


def psql_script(data: Path, csv: Path) -> Path:
    from conveyor.warehouse import ddl

    schema = SCHEMAS["psql"]
    script = data / "load_psql.sql"
    lines = [
        "\\set ON_ERROR_STOP 1",
        f"CREATE SCHEMA {schema};",
        ddl.create_table(design(f"{schema}.lineitem"), "postgres") + ";",
        f"\\copy {schema}.lineitem FROM {shlex.quote(str(csv))} CSV",
        f"ANALYZE {schema}.lineitem;",
    ]
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return script


def psql(dsn: str, sql: str) -> str:
    done = subprocess.run(
        ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", dsn, "-c", sql], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def checksum(dsn: str, schema: str) -> str:
    """Rows and a checksum over every column of ``schema.lineitem``."""
    return psql(
        dsn,
        "SELECT count(*) || ' rows, ' || sum(('x' || left(md5(t::text), 15))::bit(60)::bigint::numeric) "
        f"FROM {schema}.lineitem t",
    )


def reset(dsn: str) -> None:
    drops = "; ".join(f'DROP SCHEMA IF EXISTS "{s}" CASCADE' for v in SCHEMAS.values() for s in (v, v + "$backup"))
    psql(dsn, drops)
    psql(dsn, "CHECKPOINT")


# ---------------------------------------------------------------------------- driver


def setup(options: argparse.Namespace) -> None:
    """Untimed, in a child process: data files, the psql script and the database; prints them as JSON."""
    import psycopg

    if shutil.which("psql") is None:
        raise SystemExit("psql is not installed (apt-get install postgresql-client).")
    data = options.data / f"sf{options.scale:g}"
    data.mkdir(parents=True, exist_ok=True)
    files, csv = generate(options.scale, data)
    script = psql_script(data, csv)
    database = f"conveyor_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(options.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"'.encode())
    dsn = psycopg.conninfo.make_conninfo(options.dsn, dbname=database)
    print(json.dumps({"files": [str(f) for f in files], "script": str(script), "dsn": dsn, "database": database}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each tool (default 3); medians are reported")
    parser.add_argument("--dsn", default=ADMIN_DSN, help="a database on the server to benchmark (default: %(default)s)")
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "conveyor-bench", help="where data is generated"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.worker == "conveyor":
        worker_conveyor(options.args[0], options.args[1], options.args[2:])
        return
    if options.setup:
        setup(options)
        return

    facts = machine_facts()
    setup_args = ["--scale", f"{options.scale:g}", "--dsn", options.dsn, "--data", str(options.data)]
    done = subprocess.run(
        [sys.executable, __file__, "--setup", *setup_args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"setup failed:\n{done.stdout}\n{done.stderr}")
    prepared = json.loads(done.stdout.strip().splitlines()[-1])
    dsn = prepared["dsn"]
    commands = {
        "psql": ["psql", "-X", "-q", dsn, "-f", prepared["script"]],
        "conveyor": [sys.executable, __file__, "--worker", "conveyor", dsn, SCHEMAS["conveyor"], *prepared["files"]],
    }
    series = {tool: Series(tool, shlex.join(commands[tool])) for tool in TOOLS}
    sums: dict[str, str] = {}
    log = Path(tempfile.gettempdir()) / "conveyor-bench" / "load_pg.log"

    def one(tool: str, run: int) -> Sample:
        reset(dsn)
        sample = run_timed(commands[tool], log=log, env={"PYTHONPATH": str(ROOT)}, server="postgres")
        if sample.rc == 0:
            found = checksum(dsn, SCHEMAS[tool])
            sums.setdefault("expected", found)
            if found != sums["expected"]:
                print(f"MISMATCH {tool} run {run}: {found} != {sums['expected']}", flush=True)
                sample.rc = -100
        print(
            f"run {run} {tool:>8}: {sample.wall:6.2f} s wall, {sample.cpu:6.2f} s CPU, "
            f"{sample.server_cpu or 0:6.2f} s server CPU, {sample.rss_mb:5.0f} MB peak RSS, rc {sample.rc}",
            flush=True,
        )
        return sample

    try:
        print("untimed warm-up of each tool ...", flush=True)
        for tool in TOOLS:
            one(tool, 0)
        with LoadMonitor() as load:
            interleave(options.runs, TOOLS, lambda tool, run: series[tool].samples.append(one(tool, run)))
        reset(dsn)
    finally:
        psql(options.dsn, f'DROP DATABASE IF EXISTS "{prepared["database"]}"')

    print(f"\nmachine: {facts}\nload average (1 min) while measuring: {load.summary()}")
    print(
        f"content: {sums.get('expected')} in every run of both tools"
        if all(len(s.ok()) == len(s.samples) for s in series.values())
        else "content: see MISMATCH lines / failures above"
    )
    for s in series.values():
        print(f"{s.tool}: {s.command}")
    print()
    print(markdown(list(series.values()), "psql"))
    summary = {
        "scale": options.scale,
        "runs": options.runs,
        "load": load.summary(),
        "content": sums.get("expected"),
        **{
            s.tool: {
                "wall": s.median_wall(),
                "cpu": s.median_cpu(),
                "server_cpu": s.median_server_cpu(),
                "rss_mb": s.median_rss(),
                "runs_ok": len(s.ok()),
            }
            for s in series.values()
        },
    }
    print(json.dumps(summary))


def markdown(series: list[Series], reference: str) -> str:
    """Medians of wall, client CPU, server CPU and peak RSS, and the ratios to ``reference``."""
    return server_table(series, reference)


if __name__ == "__main__":
    main()
