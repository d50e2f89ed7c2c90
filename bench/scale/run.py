"""Scale: ``conveyor ls``, ``validate`` and a CTAS-only ``load`` at 1k, 5k, 20k relations, beside ``dbt parse``.

    bash bench/dag/setup.sh                                   # once: dbt's venv
    python3 bench/scale/run.py --sizes 1000,5000,20000 --dbt-sizes 5000 --runs 3

The projects are bench/dag's (``bench/dag/generate.py``: ``--n`` one-row CTAS relations, each
reading two random earlier ones, seed 1), generated into ``bench/dag/work/n<N>-s<SEED>/`` when
missing. Every tool runs as a whole process (wall time, CPU = user + system of the process and
its children, peak RSS from ``wait4``), stdout to a log file (a pipe, not a terminal).

For each size, one *run* of each group:

* ``conveyor``: a fresh copy of the Conveyor project (``conveyor.yaml``, ``schemas/``; no
  ``.conveyor/`` cache, no warehouse), then in this order, as each step needs the one before:
  ``ls (cold)`` (no cache exists, and ``ls`` creates none), ``validate (cold)`` (writes the
  parse and bind caches), ``validate (warm)``, ``ls (warm)`` (reads the parse cache) and
  ``load`` (``load --jobs 2`` into a fresh DuckDB warehouse: every relation built by CTAS).
  The warehouse is then checked: every table exists and a checksum (count and sum of ``x``
  over all tables) equals the one computed from the DAG.
* ``dbt`` (sizes in ``--dbt-sizes``): a fresh copy of the dbt project, ``dbt parse (cold)``
  (no ``target/``) then ``dbt parse (warm, partial parsing)``.

The groups alternate, the order rotated each run; medians are reported. The operating
system's file cache is warm in every case (the files were just copied). Targets (issue 13):
``validate`` of 1,000 relations under 0.5 s wall; ``ls`` never slower than ``validate``;
cost linear in the number of relations; ``validate`` of 5,000 at least 5x faster than
``dbt parse``; a warm ``validate`` of 20,000 under 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DAG = ROOT / "bench" / "dag"
PYTHON = ROOT / ".venv" / "bin" / "python"
DBT = DAG / ".venv-dbt" / "bin" / "dbt"

if PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(PYTHON), [str(PYTHON), __file__, *sys.argv[1:]])

sys.path.insert(0, str(DAG))
import duckdb  # noqa: E402
import generate  # noqa: E402
from measure import LoadMonitor, Series, command_line, interleave, machine_facts, run_timed, table  # noqa: E402

CONVEYOR_STEPS = ("ls (cold)", "validate (cold)", "validate (warm)", "ls (warm)", "load")
DBT_STEPS = ("dbt parse (cold)", "dbt parse (warm, partial parsing)")


def ensure_generated(n: int, seed: int) -> tuple[Path, dict[str, object]]:
    work = DAG / "work" / f"n{n}-s{seed}"
    meta_file = work / "dag.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta["n"] == n and meta["seed"] == seed:
            return work, meta
    return work, generate.generate(n, seed, work)


def fresh_copy(src: Path, dst: Path, keep: tuple[str, ...]) -> Path:
    """Copy only the project's own files (no target/, logs/, warehouse/, .conveyor/)."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for name in keep:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name)
        else:
            shutil.copy2(src / name, dst / name)
    return dst


def checksum_problem(db: Path, meta: dict[str, object]) -> str | None:
    """None when the warehouse holds every table and count/sum of x over all of them match the DAG's values."""
    if not db.exists():
        return f"{db} is missing"
    n, schema = int(str(meta["n"])), str(meta["schema"])
    values: list[str] = meta["values"]  # type: ignore[assignment]
    expected = sum(int(v) for v in values)
    rows, total = 0, 0
    with duckdb.connect(str(db), read_only=True) as con:
        found = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND NOT internal", [schema]
        ).fetchone()
        if not found or found[0] != n:
            return f"{found[0] if found else 0} tables in schema {schema}, expected {n}"
        for start in range(1, n + 1, 500):
            names = [generate.name(i) for i in range(start, min(start + 500, n + 1))]
            union = " UNION ALL ".join(f"SELECT x FROM {schema}.{t}" for t in names)
            got = con.execute(f"SELECT count(*), sum(x) FROM ({union})").fetchone()
            assert got is not None
            rows, total = rows + int(got[0]), total + int(got[1])
    if (rows, total) != (n, expected):
        return f"checksum (rows {rows}, sum {total}) differs from the DAG's (rows {n}, sum {expected})"
    return None


class Size:
    """The projects, commands and measured series of one size."""

    def __init__(self, n: int, seed: int, jobs: int, *, load: bool, dbt: bool, problems: list[str]):
        self.n, self.problems = n, problems
        self.project, self.meta = ensure_generated(n, seed)
        scratch = HERE / "work" / f"n{n}-s{seed}"
        self.logs = scratch / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.conveyor_dir, self.dbt_dir = scratch / "conveyor", scratch / "dbt"
        base = [str(PYTHON), "-m", "conveyor", "-p", str(self.conveyor_dir)]
        self.commands = {
            "ls (cold)": [*base, "ls"],
            "validate (cold)": [*base, "validate"],
            "validate (warm)": [*base, "validate"],
            "ls (warm)": [*base, "ls"],
            "load": [*base, "load", "--jobs", str(jobs)],
        }
        self.dbt_cmd = [str(DBT), "parse", "--project-dir", str(self.dbt_dir), "--profiles-dir", str(self.dbt_dir)]
        self.steps = [s for s in CONVEYOR_STEPS if s != "load" or load]
        self.groups = ["conveyor"] + (["dbt"] if dbt else [])
        self.series = {s: Series(s, " ".join(self.commands[s])) for s in self.steps}
        if dbt:
            self.series.update({s: Series(s, " ".join(self.dbt_cmd)) for s in DBT_STEPS})

    def one(self, group: str, run: int) -> None:
        """One run of a group: a fresh copy, then its steps in order."""
        todo: list[tuple[str, list[str], Path | None]]
        if group == "conveyor":
            fresh_copy(self.project / "conveyor", self.conveyor_dir, ("conveyor.yaml", "schemas"))
            todo = [(s, self.commands[s], None) for s in self.steps]
        else:
            fresh_copy(self.project / "dbt", self.dbt_dir, ("dbt_project.yml", "profiles.yml", "models"))
            (self.dbt_dir / "warehouse").mkdir()
            todo = [(s, self.dbt_cmd, self.dbt_dir) for s in DBT_STEPS]
        env = {"PYTHONPATH": str(ROOT)}  # this checkout's conveyor, wherever the venv's editable install points
        for label, cmd, cwd in todo:
            slug = "".join(c if c.isalnum() else "-" for c in label).strip("-")
            log = self.logs / f"{slug}-{run}.log"
            sample = run_timed(cmd, cwd=cwd, log=log, env=env, timeout=3600)
            if sample.rc != 0:
                self.problems.append(f"n={self.n} {label} run {run}: exit code {sample.rc}, see {log}")
            if label == "load" and sample.rc == 0:
                wrong = checksum_problem(self.conveyor_dir / "warehouse" / "dag.duckdb", self.meta)
                if wrong:
                    self.problems.append(f"n={self.n} load run {run}: {wrong}")
                    sample.rc = -1
            self.series[label].samples.append(sample)
            print(
                f"  n={self.n} run {run} {label:34s} {sample.wall:7.2f} s {sample.cpu:7.2f} CPU s "
                f"{sample.rss_mb:6.0f} MB rc={sample.rc}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,20000", help="comma-separated relation counts")
    parser.add_argument("--dbt-sizes", default="5000", help="sizes at which dbt parse runs too ('' for none)")
    parser.add_argument("--load-sizes", default=None, help="sizes at which load runs (default: every size)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--runs", default="3", help="runs of each group: a number, or per size as 1000=3,5000=3,20000=1"
    )
    parser.add_argument("--jobs", type=int, default=2, help="load --jobs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if "=" in args.runs:
        runs = {int(k): int(v) for k, v in (part.split("=") for part in args.runs.split(","))}
    else:
        runs = dict.fromkeys(sizes, int(args.runs))
    dbt_sizes = {int(s) for s in args.dbt_sizes.split(",") if s}
    load_sizes = sizes if args.load_sizes is None else [int(s) for s in args.load_sizes.split(",") if s]
    if dbt_sizes and not DBT.exists():
        sys.exit("dbt is missing: run 'bash bench/dag/setup.sh' first")

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    facts = machine_facts()
    results: dict[int, dict[str, Series]] = {}
    problems: list[str] = []
    with LoadMonitor() as load:
        for n in sizes:
            size = Size(n, args.seed, args.jobs, load=n in load_sizes, dbt=n in dbt_sizes, problems=problems)
            results[n] = size.series
            interleave(runs[n], size.groups, size.one)

    print()
    print(f"Command: `{command_line()}` (started {started})")
    print(f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']}; python {facts['python']}")
    print(f"1-minute load average during the run: {load.summary()}")
    verdicts: list[str] = []
    for n, series in results.items():
        print(f"\n{n:,} relations ({runs[n]} runs of each)\n")
        print(table(list(series.values()), "validate (cold)"))

        def wall(label: str, series: dict[str, Series] = series) -> float | None:
            return series[label].median_wall() if label in series else None

        def cpu(label: str, series: dict[str, Series] = series) -> float | None:
            return series[label].median_cpu() if label in series else None

        for phase in ("cold", "warm"):
            v, ls_ = wall(f"validate ({phase})"), wall(f"ls ({phase})")
            if v and ls_:
                verdicts.append(
                    f"n={n}: ls ({phase}) / validate ({phase}) = {ls_ / v:.2f}x wall, "
                    f"{(cpu(f'ls ({phase})') or 0) / (cpu(f'validate ({phase})') or 1):.2f}x CPU"
                )
        d, v = wall("dbt parse (cold)"), wall("validate (cold)")
        if d and v:
            verdicts.append(f"n={n}: dbt parse (cold) / validate (cold) = {d / v:.1f}x wall")
        d, v = wall("dbt parse (warm, partial parsing)"), wall("validate (warm)")
        if d and v:
            verdicts.append(f"n={n}: dbt parse (warm) / validate (warm) = {d / v:.1f}x wall")
    first, *rest = list(results)
    for label in CONVEYOR_STEPS:
        base_cpu = results[first][label].median_cpu() if label in results[first] else None
        for n in rest:
            c = results[n][label].median_cpu() if label in results[n] else None
            if base_cpu and c:
                verdicts.append(f"{label}: CPU at {n:,} / at {first:,} = {c / base_cpu:.2f} (linear: {n / first:.0f})")
    print()
    for verdict in verdicts:
        print(f"- {verdict}")
    for p in problems:
        print(f"- problem: {p}")
    out = HERE / "results.json"
    out.write_text(
        json.dumps(
            {
                "command": command_line(),
                "started": started,
                "facts": facts,
                "load_samples": load.samples,
                "sizes": {
                    str(n): {
                        s.tool: {"command": s.command, "samples": [vars(x) for x in s.samples]} for s in series.values()
                    }
                    for n, series in results.items()
                },
                "verdicts": verdicts,
                "problems": problems,
            },
            indent=2,
        )
    )
    print(f"\n(results in {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
