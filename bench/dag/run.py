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

Data tests (``--tests N``, default 2; the project generated with ``generate.py --tests N`` into
``bench/dag/work/n<N>-s<SEED>-t<TESTS>/``, every relation with the same N tests on both sides):

* ``conveyor-tests``: ``conveyor -p <project with tests> load --jobs <threads>``: the same
  build, each relation's tests run on the staging build before publishing.
* ``dbt-build``: ``dbt build --threads <threads>`` of the dbt project with the same tests
  (models and their tests in DAG order), after one untimed ``dbt parse`` of that project.
* ``dbt-tests-run``: ``dbt run --threads <threads>`` of that project (models only), to show
  what the tests add to dbt.

    python3 bench/dag/run.py --n 1000 --runs 5 --threads 2 --tools conveyor,conveyor-tests,dbt-build

Targets (from the issues): Conveyor at least 10x faster than dbt, and within 3x of the raw
floor; with tests, ``conveyor-tests`` at most 1.3x ``conveyor`` and at least 10x faster than
``dbt-build``.
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

ALL_TOOLS = ["raw", "conveyor", "conveyor-run", "dbt", "startup", "conveyor-tests", "dbt-build", "dbt-tests-run"]
TESTED_TOOLS = {"conveyor-tests", "dbt-build", "dbt-tests-run"}
"""Tools that build the project generated with ``--tests``; the others build the one without tests."""
DBT_TOOLS = {"dbt", "dbt-build", "dbt-tests-run"}


def workdir(n: int, seed: int, tests: int = 0) -> Path:
    return HERE / "work" / (f"n{n}-s{seed}" + (f"-t{tests}" if tests else ""))


def ensure_generated(n: int, seed: int, tests: int = 0) -> tuple[Path, dict[str, object]]:
    """The generated projects (made once per n, seed and number of tests)."""
    work = workdir(n, seed, tests)
    meta_file = work / "dag.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta["n"] == n and meta["seed"] == seed and meta.get("tests", 0) == tests:
            return work, meta
    return work, generate.generate(n, seed, work, tests)


def database(work: Path, tool: str) -> Path:
    if tool == "raw":
        return work / "raw" / "dag.duckdb"
    if tool.startswith("conveyor"):
        return work / "conveyor" / "warehouse" / "dag.duckdb"
    return work / "dbt" / "warehouse" / "dag.duckdb"


def command(work: Path, tool: str, threads: int) -> tuple[list[str], Path | None]:
    if tool == "raw":
        return [str(CONVEYOR_PY), str(HERE / "raw.py"), str(work / "raw.sql"), str(database(work, tool))], None
    if tool in ("conveyor", "conveyor-run", "conveyor-tests"):
        verb = "run" if tool == "conveyor-run" else "load"
        return [str(CONVEYOR), "-p", str(work / "conveyor"), verb, "--jobs", str(threads)], None
    if tool == "startup":
        return [str(CONVEYOR), "--help"], None
    if tool in DBT_TOOLS:
        dbt = work / "dbt"
        verb = "build" if tool == "dbt-build" else "run"
        return [
            str(DBT),
            verb,
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


def test_verdicts(series: dict[str, Series]) -> list[str]:
    """What the data tests add to Conveyor's load (target <= 1.3x) and dbt build / Conveyor with tests (>= 10x)."""
    found = []

    def medians(tool: str) -> tuple[float, float] | None:
        s = series.get(tool)
        wall, cpu = (s.median_wall(), s.median_cpu()) if s else (None, None)
        return (wall, cpu) if wall and cpu else None

    plain, tested, build, run = medians("conveyor"), medians("conveyor-tests"), medians("dbt-build"), None
    run = medians("dbt-tests-run") or medians("dbt")
    if plain and tested:
        ratio = tested[0] / plain[0]
        verdict = "met" if ratio <= 1.3 else f"MISSED: needs <= {1.3 * plain[0]:.2f} s"
        found.append(
            f"Conveyor with tests / without: {ratio:.2f}x wall, {tested[1] / plain[1]:.2f}x CPU "
            f"(target <= 1.30x): {verdict}"
        )
    if build and tested:
        speedup = build[0] / tested[0]
        verdict = "met" if speedup >= 10 else f"MISSED: Conveyor with tests needs <= {build[0] / 10:.2f} s"
        found.append(
            f"dbt build / Conveyor with tests: {speedup:.1f}x wall, {build[1] / tested[1]:.1f}x CPU "
            f"(target >= 10x): {verdict}"
        )
    if build and run:
        found.append(f"dbt build / dbt run (what the tests add to dbt): {build[0] / run[0]:.2f}x wall, "
                     f"{build[1] / run[1]:.2f}x CPU")  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="Conveyor --jobs and dbt --threads")
    parser.add_argument(
        "--tools", default="raw,conveyor,conveyor-run,dbt,startup", help=f"comma-separated, of {','.join(ALL_TOOLS)}"
    )
    parser.add_argument(
        "--tests",
        type=int,
        default=2,
        choices=range(1, len(generate.TEST_KINDS) + 1),
        help="data tests per relation in the project of conveyor-tests, dbt-build and dbt-tests-run (default 2)",
    )
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - set(ALL_TOOLS)
    if unknown:
        parser.error(f"unknown tools {sorted(unknown)}")
    if set(tools) & DBT_TOOLS and not DBT.exists():
        sys.exit("dbt is missing: run 'bash bench/dag/setup.sh' first")

    work, meta = ensure_generated(args.n, args.seed)
    tested = ensure_generated(args.n, args.seed, args.tests)[0] if set(tools) & TESTED_TOOLS else work

    def project(tool: str) -> Path:
        return tested if tool in TESTED_TOOLS else work

    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    for folder in sorted({project(t) for t in tools if t in DBT_TOOLS}):  # warm dbt's partial parsing, untimed
        subprocess.run(
            [str(DBT), "parse", "--project-dir", str(folder / "dbt"), "--profiles-dir", str(folder / "dbt")],
            cwd=folder / "dbt",
            stdout=subprocess.DEVNULL,
            check=True,
            env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DO_NOT_TRACK": "1"},
        )

    facts = machine_facts()
    series = {t: Series(t, " ".join(command(project(t), t, args.threads)[0])) for t in tools}
    problems: list[str] = []

    def one(tool: str, run: int) -> None:
        reset(project(tool), tool)
        cmd, cwd = command(project(tool), tool, args.threads)
        sample = run_timed(cmd, cwd=cwd, log=logs / f"{tool}-{run}.log")
        if sample.rc == 0:
            wrong = check(project(tool), tool, meta) if tool != "startup" else None
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
    if set(tools) & TESTED_TOOLS:
        kinds = " and ".join(generate.TEST_KINDS[: args.tests])
        print(f"Data tests ({', '.join(t for t in tools if t in TESTED_TOOLS)}): {kinds} on x of every relation")
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
    verdicts += test_verdicts(series)
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
        "tests": args.tests if set(tools) & TESTED_TOOLS else 0,
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
