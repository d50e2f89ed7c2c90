"""Benchmark: TPC-H's 22 queries as a Conveyor project on PostgreSQL against the same SQL run by psql.

    /work/main/.venv/bin/python bench/tpch_pg/run.py --scale 0.1 --runs 5

Setup, once and untimed (cached under ``--data``):

1. TPC-H at ``--scale`` from ``tpchgen-cli`` (dbgen-identical; the one next to this Python),
   as ``<table>.txt`` (the ``.tbl`` lines without their trailing ``|``).
2. An upstream database ``conveyor_bench_tpch_up`` with schema ``tpch`` (the specification's
   types and keys, tests/differential/tpch/schema.sql) filled by COPY, and a warehouse
   database ``conveyor_bench_tpch_wh``.
3. A Conveyor project (``<data>/project``): source ``tpch`` bootstrapped from the upstream,
   ``search_path: [tpch]``, ``jobs: 2``, the 22 queries (tests/differential/tpch/queries, text
   as DuckDB ships them) as CTAS ``q.q01`` ... ``q.q22``; ``conveyor extract`` fills its lake.
   A second project (``<data>/ctas``) holds the same 22 CTAS in schema ``qx`` and reads the
   ``tpch`` schema the first one published as ``external`` tables.
4. One untimed ``conveyor load`` (it publishes ``tpch``, which gives the direct run its
   column types, and the ``ctas`` tools their input) and one untimed run of each tool.

Timed, every tool a whole process (``bench/dag/measure.py``'s ``run_timed(server="postgres")``:
wall, client CPU, peak RSS and the PostgreSQL server's CPU), order rotated each round
(``interleave``), a CHECKPOINT before each run. Two boundaries, each with both tools on it:

* **load + transform** (``conveyor``, ``psql``): from the source rows outside the warehouse to
  22 finished tables. ``conveyor``: ``python -m conveyor load -q -e pg`` (the lake's Parquet
  extracts -> 8 tables by binary COPY, each analysed; the 22 CTAS, two at a time; the keys the
  bootstrapped designs declare checked; the schemas published). ``psql``: ``psql -f direct.sql``
  (drop and create schemas ``direct_tpch`` and ``direct_q``; the 8 tables with the column types
  of Conveyor's; ``\\copy`` of the same rows as text; ``ANALYZE``; the 22 CTAS one after
  another). The inputs differ in format only (Parquet for Conveyor, text for psql, which
  cannot read Parquet): same rows, same types.
* **transform only** (``conveyor-ctas``, ``psql-ctas``): the 22 CTAS over the analysed tables of
  schema ``tpch``. ``conveyor-ctas``: ``conveyor load`` of the ``ctas`` project (schema ``qx``).
  ``psql-ctas``: the 22 CTAS into ``direct_qx``.

After every run each of the 22 tables is checked against the first run's: row count and
``md5`` over the sorted ``md5`` of every row's text (all columns). Conveyor's and psql's must
agree. Prints one Markdown table per boundary, the load average, and the per-query times of
the last round (psql's ``\\timing``; Conveyor's step durations from ``conveyor runs``).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench" / "dag"))

from measure import LoadMonitor, Sample, Series, interleave, machine_facts, run_timed, server_table  # noqa: E402

TPCH = ROOT / "tests" / "differential" / "tpch"
TABLES = ["region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]
ALL_QUERIES = [f"q{n:02d}" for n in range(1, 23)]
QUERIES = list(ALL_QUERIES)  # the queries of this run (--skip)
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
UPSTREAM = "conveyor_bench_tpch_up"
WAREHOUSE = "conveyor_bench_tpch_wh"
TOOLS = ["conveyor", "psql", "conveyor-ctas", "psql-ctas"]
RESULT_SCHEMA = {"conveyor": "q", "psql": "direct_q", "conveyor-ctas": "qx", "psql-ctas": "direct_qx"}


def dsn(database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{database}"


def query(number: str, schema: str | None = None) -> str:
    """A query's text; with ``schema``, its table names qualified with it (the ``ctas`` project
    reads them as external tables, which unqualified names do not bind to)."""
    text = (TPCH / "queries" / f"{number}.sql").read_text(encoding="utf-8").strip().rstrip(";")
    return text if schema is None else qualify(text, schema)


_TABLE = "|".join(TABLES)
_CLAUSE_END = re.compile(r"^\s*(WHERE|GROUP|ORDER|HAVING|LIMIT|SELECT|UNION)\b|^\s*\)", re.I)


def qualify(text: str, schema: str) -> str:
    """Qualify the TPC-H table names of FROM lists and JOINs (one table per line, as the queries are
    written); column aliases such as q08's ``nation`` are left alone."""
    out, in_from = [], False
    for line in text.splitlines():
        if _CLAUSE_END.match(line):
            in_from = False
        line = re.sub(rf"\b(FROM|JOIN)(\s+)({_TABLE})\b", rf"\1\2{schema}.\3", line, flags=re.I)
        if in_from:
            line = re.sub(rf"^(\s*)({_TABLE})\b(?=\s*(\w+\s*)?,?\s*$)", rf"\1{schema}.\2", line)
        if re.search(r"\bFROM\s*$", line, re.I):
            in_from = True
        out.append(line)
    return "\n".join(out)


# ------------------------------------------------------------------------------ setup


def generate(scale: str, data: Path) -> Path:
    """<table>.txt at ``scale``: dbgen rows, '|'-separated, without the trailing '|'."""
    out = data / "tbl"
    if all((out / f"{t}.txt").exists() for t in TABLES):
        return out
    out.mkdir(parents=True, exist_ok=True)
    tool = shutil.which("tpchgen-cli") or str(Path(sys.executable).parent / "tpchgen-cli")
    print(f"generating TPC-H SF{scale} ...", flush=True)
    subprocess.run([tool, "-s", scale, "--output-dir", str(out), "-q"], check=True)
    for table in TABLES:
        with (out / f"{table}.tbl").open("rb") as src, (out / f"{table}.tmp").open("wb") as dst:
            for line in src:
                dst.write(line.rstrip(b"\n").removesuffix(b"|") + b"\n")
        (out / f"{table}.tmp").rename(out / f"{table}.txt")
        (out / f"{table}.tbl").unlink()
    return out


def prepare_upstream(tbl: Path) -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as admin:
        for name in (UPSTREAM, WAREHOUSE):
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                admin.execute(f'CREATE DATABASE "{name}"'.encode())
    with psycopg.connect(dsn(UPSTREAM), autocommit=True) as con:
        if con.execute("SELECT to_regclass('tpch.lineitem')").fetchone() == (None,):
            print("filling the upstream database ...", flush=True)
            con.execute("DROP SCHEMA IF EXISTS tpch CASCADE")
            con.execute("CREATE SCHEMA tpch")
            con.execute((TPCH / "schema.sql").read_text().replace("{schema}", "tpch").encode())
            for table in TABLES:
                statement = f"COPY tpch.{table} FROM STDIN (DELIMITER '|')".encode()
                with (tbl / f"{table}.txt").open("rb") as src, con.cursor() as cur, cur.copy(statement) as copy:
                    while chunk := src.read(1 << 20):
                        copy.write(chunk)
            con.execute("ANALYZE")


def conveyor_cmd(project: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "conveyor", "-p", str(project), *args]


def cli(project: Path, *args: str) -> None:
    env = {"PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200"}
    done = subprocess.run(
        conveyor_cmd(project, *args), env={**_environ(), **env}, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"conveyor {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "CONVEYOR_PROJECT"}


def write_ctas(folder: Path, schema: str, source: str | None = None) -> None:
    shutil.rmtree(folder / "schemas" / schema, ignore_errors=True)
    for number in QUERIES:
        path = folder / "schemas" / schema / f"{number}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(query(number, source) + "\n", encoding="utf-8")
        path.with_suffix(".yaml").write_text(f"name: {schema}.{number}\nkind: ctas\n", encoding="utf-8")


def prepare_projects(data: Path) -> tuple[Path, Path]:
    import yaml

    project, ctas = data / "project", data / "ctas"
    if not (project / "lake").is_dir():
        shutil.rmtree(project, ignore_errors=True)
        project.mkdir(parents=True)
        settings = {
            "name": "tpch_pg",
            "sources": {"tpch": {"type": "postgres", "dsn": dsn(UPSTREAM), "include": ["tpch.*"]}},
            "lake": {"path": "lake", "keep": 1},
            "environments": {"pg": {"type": "postgres", "dsn": dsn(WAREHOUSE), "keep_backup": False}},
            "default_environment": "pg",
            "defaults": {"jobs": 2, "search_path": ["tpch"]},
        }
        (project / "conveyor.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
        print("bootstrapping and extracting the Conveyor project ...", flush=True)
        cli(project, "bootstrap", "-q")
        cli(project, "-q", "extract")
    write_ctas(project, "q")
    if not (ctas / "conveyor.yaml").exists():
        ctas.mkdir(parents=True, exist_ok=True)
        settings = {
            "name": "tpch_pg_ctas",
            "external": ["tpch"],
            "environments": {"pg": {"type": "postgres", "dsn": dsn(WAREHOUSE), "keep_backup": False}},
            "default_environment": "pg",
            "defaults": {"jobs": 2, "search_path": ["tpch"]},
        }
        (ctas / "conveyor.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    write_ctas(ctas, "qx", "tpch")
    return project, ctas


def direct_scripts(tbl: Path, data: Path) -> tuple[Path, Path]:
    """direct.sql (load + ANALYZE + 22 CTAS) and direct_ctas.sql (22 CTAS), with Conveyor's column types."""
    import psycopg

    with psycopg.connect(dsn(WAREHOUSE)) as con:
        rows = con.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'tpch' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum"
        ).fetchall()
    columns: dict[str, list[str]] = {}
    for table, column, kind, not_null in rows:
        columns.setdefault(table, []).append(f"{column} {kind}" + (" NOT NULL" if not_null else ""))
    head = ["\\set ON_ERROR_STOP 1", "\\timing on", "SET client_min_messages = warning;"]
    load = [
        "DROP SCHEMA IF EXISTS direct_q CASCADE;",
        "DROP SCHEMA IF EXISTS direct_tpch CASCADE;",
        "CREATE SCHEMA direct_tpch;",
        "CREATE SCHEMA direct_q;",
    ]
    for table in TABLES:
        load.append(f"CREATE TABLE direct_tpch.{table} ({', '.join(columns[table])});")
        load.append(f"\\copy direct_tpch.{table} FROM {shlex.quote(str(tbl / f'{table}.txt'))} (DELIMITER '|')")
    load += [f"ANALYZE direct_tpch.{table};" for table in TABLES]
    load.append("SET search_path = direct_tpch;")
    load += [f"CREATE TABLE direct_q.{n} AS\n{query(n)};" for n in QUERIES]
    ctas = ["DROP SCHEMA IF EXISTS direct_qx CASCADE;", "CREATE SCHEMA direct_qx;", "SET search_path = tpch;"]
    ctas += [f"CREATE TABLE direct_qx.{n} AS\n{query(n, 'tpch')};" for n in QUERIES]
    full, only = data / "direct.sql", data / "direct_ctas.sql"
    full.write_text("\n".join(head + load) + "\n", encoding="utf-8")
    only.write_text("\n".join(head + ctas) + "\n", encoding="utf-8")
    return full, only


# ------------------------------------------------------------------------------ checks


def psql(sql: str) -> str:
    """Run SQL with psql (not psycopg: the driver stays small, and its RSS is the floor of what
    ``wait4`` reports for the processes it starts)."""
    done = subprocess.run(
        ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", dsn(WAREHOUSE), "-c", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def checksums(schema: str) -> dict[str, tuple[int, str]]:
    """Per query table: (rows, md5 over the sorted md5 of every row's text)."""
    parts = [
        f"SELECT '{n}', count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
        f"FROM (SELECT md5(t::text) AS h FROM {schema}.{n} t) s"
        for n in QUERIES
    ]
    found: dict[str, tuple[int, str]] = {}
    for line in psql(" UNION ALL ".join(parts)).splitlines():
        number, rows, digest = line.split("|")
        found[number] = (int(rows), digest)
    return found


def checkpoint() -> None:
    psql("CHECKPOINT")


# ------------------------------------------------------------------------------ reporting


def markdown(series: list[Series], reference: str) -> str:
    """Medians of wall, client CPU, server CPU and peak RSS, and the ratios to ``reference``."""
    return server_table(series, reference)


def psql_timings(log: Path) -> list[float]:
    """The ``\\timing`` figures (s) of the last run in a psql log, in statement order."""
    text = log.read_text(errors="replace").split("=== run")[-1]
    return [float(m) / 1000 for m in re.findall(r"^Time: ([\d.]+) ms", text, flags=re.M)]


def conveyor_steps(project: Path) -> Any:
    """The last run's steps, as ``conveyor runs show last --format json`` gives them."""
    env = {**_environ(), "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "250"}
    done = subprocess.run(
        conveyor_cmd(project, "runs", "show", "last", "--format", "json"),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        return done.stdout[-3000:]


# ------------------------------------------------------------------------------ driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="0.1", help="TPC-H scale factor (default 0.1)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each tool (default 5)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    parser.add_argument(
        "--skip", default="q17,q20", help="queries left out, comma-separated (default q17,q20: see docs/benchmarks.md)"
    )
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "conveyor-bench" / "tpch_pg")
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    tools = [t for t in options.tools.split(",") if t]
    skipped = {q for q in options.skip.split(",") if q}
    QUERIES[:] = [q for q in ALL_QUERIES if q not in skipped]

    data = options.data / f"sf{options.scale}"
    data.mkdir(parents=True, exist_ok=True)
    tbl, project, ctas = data / "tbl", data / "project", data / "ctas"
    full, only = data / "direct.sql", data / "direct_ctas.sql"
    if options.setup:  # in a child process: psycopg and yaml stay out of the driver
        generate(options.scale, tbl.parent)
        prepare_upstream(tbl)
        prepare_projects(data)
        print("untimed first load ...", flush=True)
        cli(project, "-q", "load", "-e", "pg")
        direct_scripts(tbl, data)
        return
    facts = machine_facts()
    subprocess.run([sys.executable, __file__, "--setup", *sys.argv[1:]], check=True)
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    commands = {
        "conveyor": (conveyor_cmd(project, "-q", "load", "-e", "pg"), project),
        "psql": (["psql", "-X", "-q", dsn(WAREHOUSE), "-f", str(full)], data),
        "conveyor-ctas": (conveyor_cmd(ctas, "-q", "load", "-e", "pg"), ctas),
        "psql-ctas": (["psql", "-X", "-q", dsn(WAREHOUSE), "-f", str(only)], data),
    }
    env = {"PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    series = {t: Series(t, shlex.join(commands[t][0])) for t in tools}
    expected: dict[str, tuple[int, str]] = {}
    mismatches: list[str] = []

    def one(tool: str, run: int) -> Sample:
        cmd, cwd = commands[tool]
        log = logs / f"{tool}.log"
        with log.open("a") as out:
            out.write(f"=== run {run}\n")
        checkpoint()
        sample = run_timed(cmd, cwd=cwd, log=log, env=env, server="postgres")
        if sample.rc == 0:
            found = checksums(RESULT_SCHEMA[tool])
            if not expected:
                expected.update(found)
            bad = [n for n in QUERIES if found[n] != expected[n]]
            if bad:
                mismatches.append(f"{tool} run {run}: {', '.join(bad)}")
                sample.rc = -100
        print(
            f"run {run} {tool:>13}: {sample.wall:6.2f} s wall, {sample.cpu:6.2f} s CPU, "
            f"{sample.server_cpu or 0:6.2f} s server CPU, {sample.rss_mb:5.0f} MB, rc {sample.rc}",
            flush=True,
        )
        return sample

    print("untimed warm-up of each tool ...", flush=True)
    for tool in tools:
        one(tool, 0)
    with LoadMonitor() as load:
        interleave(options.runs, tools, lambda tool, run: series[tool].samples.append(one(tool, run)))

    print(f"\nmachine: {facts}\nload average (1 min) while measuring: {load.summary()}")
    for s in series.values():
        print(f"{s.tool}: {s.command}")
    boundaries = [("load + transform", ["conveyor", "psql"]), ("transform only", ["conveyor-ctas", "psql-ctas"])]
    for title, pair in boundaries:
        rows = [series[t] for t in pair if t in series]
        if len(rows) == 2:
            print(f"\n{title}, TPC-H SF{options.scale}, medians of {options.runs}:\n")
            print(markdown(rows, pair[1]))
    print(
        "\nresults: "
        + (f"all {len(QUERIES)} tables of every run agree (rows + md5 of all columns)" if not mismatches else "")
    )
    for line in mismatches:
        print("  MISMATCH " + line)
    for tool in ("psql", "psql-ctas"):
        if tool in series:
            times = psql_timings(logs / f"{tool}.log")
            ctas_times = times[-len(QUERIES) :]
            print(
                f"\n{tool} last run, statement times (s): total {sum(times):.2f}, "
                f"{len(QUERIES)} CTAS {sum(ctas_times):.2f}"
            )
            print("  " + ", ".join(f"{n} {t:.2f}" for n, t in zip(QUERIES, ctas_times, strict=False)))
    steps = {tool: conveyor_steps(commands[tool][1]) for tool in ("conveyor", "conveyor-ctas") if tool in series}
    (data / "conveyor_steps.json").write_text(json.dumps(steps, indent=1, default=str))
    summary = {
        t: {
            "wall": s.median_wall(),
            "cpu": s.median_cpu(),
            "server_cpu": s.median_server_cpu(),
            "rss_mb": s.median_rss(),
            "runs_ok": len(s.ok()),
            "samples": [vars(x) for x in s.samples],
        }
        for t, s in series.items()
    }
    (data / "result.json").write_text(json.dumps({"facts": facts, "load": load.summary(), **summary}, indent=1))
    print(f"\nraw samples: {data / 'result.json'}; logs: {logs}")
    if mismatches:
        sys.exit(1)


if __name__ == "__main__":
    main()
