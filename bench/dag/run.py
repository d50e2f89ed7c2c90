"""DAG build benchmark: Conveyor beside dbt and the raw floor on a random DAG of one-row CTAS.

    bash bench/dag/setup.sh                                   # once: dbt's venv
    python3 bench/dag/run.py --n 1000 --runs 5 --threads 2

The DAG comes from ``generate.py`` (``--n`` relations, ``--seed``), generated into
``bench/dag/work/n<N>-s<SEED>/`` when missing. Every run builds all ``--n`` tables from
scratch (the tool's database file is removed first) in its own subprocess; the wall time
is the whole process and the peak RSS is that process's ``ru_maxrss`` (see measure.py).
Runs are interleaved (run 1 of every tool, then run 2 ..., the order rotated each time) so a
noisy neighbour hurts every tool alike; the report gives medians. After every run the
result is checked: ``--n`` tables in schema ``s`` and every ``x`` as expected.

Tools (``--tools``, default ``raw,conveyor,conveyor-run,dbt,startup``):

* ``raw``: the floor. ``raw.py``: the CREATE TABLE AS statements in topological order on one
  DuckDB connection from one Python process (Conveyor's Python and DuckDB).
* ``conveyor``: ``conveyor -p <project> load --jobs <threads>`` (no sources: load builds
  every CTAS into a new file and publishes it).
* ``conveyor-run``: ``conveyor -p <project> run --jobs <threads>`` (the same, via run).
* ``startup``: ``conveyor --help``, not a build: Conveyor's start-up (interpreter and imports),
  which every command pays.
* ``dbt``: ``dbt run --threads <threads>`` (dbt-core 1.10 + dbt-duckdb from
  ``bench/dag/.venv-dbt``), after one untimed ``dbt parse``, so every timed run has
  dbt's partial parsing warm (dbt's best case).

Targets (from the issue): Conveyor at least 10x faster than dbt, and within 3x of the raw floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONVEYOR_PY = ROOT / ".venv" / "bin" / "python"
CONVEYOR = ROOT / ".venv" / "bin" / "conveyor"
DBT = HERE / ".venv-dbt" / "bin" / "dbt"

# the checks need duckdb: run under Conveyor's Python
if CONVEYOR_PY.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(CONVEYOR_PY), [str(CONVEYOR_PY), __file__, *sys.argv[1:]])

import duckdb  # noqa: E402

sys.path.insert(0, str(HERE))
import generate  # noqa: E402
from measure import LoadMonitor, Series, command_line, interleave, machine_facts, run_timed, table  # noqa: E402

ALL_TOOLS = ["raw", "conveyor", "conveyor-run", "dbt", "startup"]


def workdir(n: int, seed: int) -> Path:
    return HERE / "work" / f"n{n}-s{seed}"


def ensure_generated(n: int, seed: int) -> tuple[Path, dict[str, object]]:
    """The generated projects (made once per n and seed)."""
    work = workdir(n, seed)
    meta_file = work / "dag.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta["n"] == n and meta["seed"] == seed:
            return work, meta
    return work, generate.generate(n, seed, work)


def database(work: Path, tool: str) -> Path:
    return {
        "raw": work / "raw" / "dag.duckdb",
        "conveyor": work / "conveyor" / "warehouse" / "dag.duckdb",
        "conveyor-run": work / "conveyor" / "warehouse" / "dag.duckdb",
        "dbt": work / "dbt" / "warehouse" / "dag.duckdb",
    }[tool]


def command(work: Path, tool: str, threads: int) -> tuple[list[str], Path | None]:
    if tool == "raw":
        return [str(CONVEYOR_PY), str(HERE / "raw.py"), str(work / "raw.sql"), str(database(work, tool))], None
    if tool in ("conveyor", "conveyor-run"):
        verb = "load" if tool == "conveyor" else "run"
        return [str(CONVEYOR), "-p", str(work / "conveyor"), verb, "--jobs", str(threads)], None
    if tool == "startup":
        return [str(CONVEYOR), "--help"], None
    if tool == "dbt":
        dbt = work / "dbt"
        return [
            str(DBT),
            "run",
            "--threads",
            str(threads),
            "--project-dir",
            str(dbt),
            "--profiles-dir",
            str(dbt),
        ], dbt
    raise ValueError(tool)


def reset(work: Path, tool: str) -> None:
    """Every run builds from scratch: remove the tool's database file (and its backups)."""
    if tool == "startup":
        return
    db = database(work, tool)
    if tool.startswith("conveyor"):
        shutil.rmtree(db.parent, ignore_errors=True)
    else:
        for leftover in (db, Path(f"{db}.wal")):
            leftover.unlink(missing_ok=True)


def check(work: Path, tool: str, meta: dict[str, object]) -> str | None:
    """None when the database holds every table with the expected value, else what is wrong."""
    db = database(work, tool)
    if not db.exists():
        return f"{db} is missing"
    n = int(meta["n"])  # type: ignore[call-overload]
    schema = str(meta["schema"])
    expected = [int(v) for v in meta["values"]]  # type: ignore[attr-defined]
    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND NOT internal", [schema]
        ).fetchone()
        if not tables or tables[0] != n:
            return f"{tables[0] if tables else 0} tables in schema {schema}, expected {n}"
        union = " UNION ALL ".join(f"SELECT {i} AS i, x FROM {schema}.{generate.name(i)}" for i in range(1, n + 1))
        got = dict(con.execute(union).fetchall())
    wrong = [i for i in range(1, n + 1) if got.get(i) != expected[i - 1]]
    return f"{len(wrong)} wrong values, first {generate.name(wrong[0])}" if wrong else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="Conveyor --jobs and dbt --threads")
    parser.add_argument(
        "--tools", default="raw,conveyor,conveyor-run,dbt,startup", help=f"comma-separated, of {','.join(ALL_TOOLS)}"
    )
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - set(ALL_TOOLS)
    if unknown:
        parser.error(f"unknown tools {sorted(unknown)}")
    if "dbt" in tools and not DBT.exists():
        sys.exit("dbt is missing: run 'bash bench/dag/setup.sh' first")

    work, meta = ensure_generated(args.n, args.seed)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    if "dbt" in tools:  # warm dbt's partial parsing once, untimed
        subprocess.run(
            [str(DBT), "parse", "--project-dir", str(work / "dbt"), "--profiles-dir", str(work / "dbt")],
            cwd=work / "dbt",
            stdout=subprocess.DEVNULL,
            check=True,
            env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DO_NOT_TRACK": "1"},
        )

    facts = machine_facts()
    series = {t: Series(t, " ".join(command(work, t, args.threads)[0])) for t in tools}
    problems: list[str] = []

    def one(tool: str, run: int) -> None:
        reset(work, tool)
        cmd, cwd = command(work, tool, args.threads)
        sample = run_timed(cmd, cwd=cwd, log=logs / f"{tool}-{run}.log")
        if sample.rc == 0:
            wrong = check(work, tool, meta) if tool != "startup" else None
            if wrong:
                sample.rc = -1
                problems.append(f"{tool} run {run}: {wrong}")
        else:
            problems.append(f"{tool} run {run}: exit code {sample.rc}, see {logs / f'{tool}-{run}.log'}")
        series[tool].samples.append(sample)
        print(f"  run {run} {tool:13s} {sample.wall:7.2f} s  {sample.rss_mb:6.0f} MB  rc={sample.rc}", flush=True)

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    with LoadMonitor() as load:
        interleave(args.runs, tools, one)
    facts["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())

    rows = [series[t] for t in tools]
    print()
    print(f"Command: `{command_line()}` (started {started})")
    print(f"DAG: {args.n} one-row CTAS relations, seed {args.seed}, 2 random parents each; {args.runs} runs per tool")
    print(f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']}; python {facts['python']}")
    print(f"1-minute load average during the run: {load.summary()}")
    print()
    reference = "conveyor" if "conveyor" in series else tools[0]
    print(table(rows, reference))
    print()
    for t in tools:
        print(f"- {t}: `{series[t].command}`")
    conv = series.get("conveyor") or series.get("conveyor-run")
    verdicts = []
    if conv and conv.median_wall():
        cw = conv.median_wall() or 0.0
        if "dbt" in series and series["dbt"].median_wall():
            dw = series["dbt"].median_wall() or 0.0
            speedup = dw / cw
            verdict = (
                "met" if speedup >= 10 else f"MISSED: Conveyor needs <= {dw / 10:.2f} s, {cw - dw / 10:.2f} s less"
            )
            verdicts.append(f"Conveyor vs dbt: {speedup:.1f}x faster (target >= 10x): {verdict}")
        if "raw" in series and series["raw"].median_wall():
            rw = series["raw"].median_wall() or 1.0
            over = cw / rw
            verdict = "met" if over <= 3 else f"MISSED: Conveyor needs <= {3 * rw:.2f} s, {cw - 3 * rw:.2f} s less"
            verdicts.append(f"Conveyor vs raw floor: {over:.2f}x (target <= 3x): {verdict}")
        cc = conv.median_cpu() or 0.0
        for peer in ("dbt", "raw"):
            pc = series[peer].median_cpu() if peer in series else None
            if pc and cc:
                verdicts.append(f"by CPU seconds (less sensitive to a busy machine): {peer} / Conveyor = {pc / cc:.2f}")
    print()
    for v in verdicts:
        print(f"- {v}")
    for p in problems:
        print(f"- problem: {p}")
    result = {
        "command": command_line(),
        "started": started,
        "n": args.n,
        "seed": args.seed,
        "threads": args.threads,
        "facts": facts,
        "load_samples": load.samples,
        "series": {
            t: {"command": s.command, "samples": [vars(x) for x in s.samples], "median_wall": s.median_wall()}
            for t, s in series.items()
        },
        "verdicts": verdicts,
        "problems": problems,
    }
    out = HERE / f"results-n{args.n}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"\n(results in {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
