"""Validate benchmark: ``conveyor validate`` beside ``dbt parse`` on the generated DAG project.

    bash bench/dag/setup.sh                                   # once: dbt's venv
    python3 bench/validate/run.py --n 1000 --runs 5

The project is bench/dag's (``bench/dag/generate.py``: ``--n`` one-row CTAS relations, each
reading two random earlier ones), generated into ``bench/dag/work/n<N>-s<SEED>/`` when
missing. Each run copies the Conveyor project and the dbt project into fresh folders (so no
cache of an earlier run exists) and measures, each in its own subprocess (whole process wall
time, peak RSS from ``wait4``):

* ``conveyor validate (cold)``: ``conveyor -p <copy> validate``, the first run on the copy;
* ``conveyor validate (warm)``: the same command again on the same copy (today Conveyor has
  no parse cache, so warm measures the same work; a later parse cache keyed by content hash
  will show up here);
* ``dbt parse (cold)``: ``dbt parse`` on the copy, which has no ``target/`` yet;
* ``dbt parse (warm)``: ``dbt parse`` again, with dbt's partial parsing
  (``target/partial_parse.msgpack``) from the cold run.

Conveyor's pair and dbt's pair alternate, the order rotated each run; medians are reported.
The operating system's file cache is warm in every case (the files were just copied).
Target (from the issue): ``conveyor validate`` under 1 s for 1,000 relations.
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
CONVEYOR_PY = ROOT / ".venv" / "bin" / "python"
CONVEYOR = ROOT / ".venv" / "bin" / "conveyor"
DBT = DAG / ".venv-dbt" / "bin" / "dbt"

if CONVEYOR_PY.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(CONVEYOR_PY), [str(CONVEYOR_PY), __file__, *sys.argv[1:]])

sys.path.insert(0, str(DAG))
import generate  # noqa: E402
from measure import LoadMonitor, Series, command_line, interleave, machine_facts, run_timed, table  # noqa: E402

TARGET_S = 1.0


def ensure_generated(n: int, seed: int) -> Path:
    work = DAG / "work" / f"n{n}-s{seed}"
    meta_file = work / "dag.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta["n"] == n and meta["seed"] == seed:
            return work
    generate.generate(n, seed, work)
    return work


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tools", default="conveyor,dbt", help="comma-separated, of conveyor,dbt")
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if "dbt" in tools and not DBT.exists():
        sys.exit("dbt is missing: run 'bash bench/dag/setup.sh' first")

    project = ensure_generated(args.n, args.seed)
    scratch = HERE / "work" / f"n{args.n}-s{args.seed}"
    logs = scratch / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    conveyor_dir, dbt_dir = scratch / "conveyor", scratch / "dbt"
    conveyor_cmd = [str(CONVEYOR), "-p", str(conveyor_dir), "validate"]
    dbt_cmd = [str(DBT), "parse", "--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir)]
    names = {
        "conveyor": ("conveyor validate (cold)", "conveyor validate (warm)"),
        "dbt": ("dbt parse (cold)", "dbt parse (warm, partial parsing)"),
    }
    series = {
        label: Series(label, " ".join(conveyor_cmd if tool == "conveyor" else dbt_cmd))
        for tool in tools
        for label in names[tool]
    }
    problems: list[str] = []

    def one(tool: str, run: int) -> None:
        if tool == "conveyor":
            fresh_copy(project / "conveyor", conveyor_dir, ("conveyor.yaml", "schemas"))
            cmd, cwd = conveyor_cmd, None
        else:
            fresh_copy(project / "dbt", dbt_dir, ("dbt_project.yml", "profiles.yml", "models"))
            (dbt_dir / "warehouse").mkdir()
            cmd, cwd = dbt_cmd, dbt_dir
        for label, phase in zip(names[tool], ("cold", "warm"), strict=True):
            log = logs / f"{tool}-{phase}-{run}.log"
            sample = run_timed(cmd, cwd=cwd, log=log)
            if sample.rc != 0:
                problems.append(f"{label} run {run}: exit code {sample.rc}, see {log}")
            series[label].samples.append(sample)
            print(f"  run {run} {label:36s} {sample.wall:6.2f} s {sample.rss_mb:6.0f} MB rc={sample.rc}", flush=True)

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    facts = machine_facts()
    with LoadMonitor() as load:
        interleave(args.runs, tools, one)

    rows = list(series.values())
    print()
    print(f"Command: `{command_line()}` (started {started})")
    print(f"Project: bench/dag's {args.n} CTAS relations (seed {args.seed}); {args.runs} runs of each")
    print(f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']}; python {facts['python']}")
    print(f"1-minute load average during the run: {load.summary()}")
    print()
    reference = names["conveyor"][0] if "conveyor" in tools else rows[0].tool
    print(table(rows, reference))
    print()
    print(f"- conveyor: `{' '.join(conveyor_cmd)}`")
    print(f"- dbt: `{' '.join(dbt_cmd)}` (cwd {dbt_dir})")
    verdicts = []
    for label in names["conveyor"] if "conveyor" in tools else ():
        med = series[label].median_wall()
        if med is not None:
            verdict = (
                "met" if med < TARGET_S else f"MISSED by {med - TARGET_S:.2f} s ({med / TARGET_S:.1f}x the target)"
            )
            verdicts.append(f"{label}: {med:.2f} s (target < {TARGET_S:.0f} s): {verdict}")
            verdicts.append(f"{label}: {series[label].median_cpu() or 0.0:.2f} CPU seconds")
    if "dbt" in tools and "conveyor" in tools:
        c, d = series[names["conveyor"][0]].median_wall(), series[names["dbt"][0]].median_wall()
        if c and d:
            verdicts.append(f"dbt parse (cold) / conveyor validate (cold): {d / c:.1f}x")
        c, d = series[names["conveyor"][1]].median_wall(), series[names["dbt"][1]].median_wall()
        if c and d:
            verdicts.append(f"dbt parse (warm) / conveyor validate (warm): {d / c:.1f}x")
    print()
    for v in verdicts:
        print(f"- {v}")
    for p in problems:
        print(f"- problem: {p}")
    out = HERE / f"results-n{args.n}.json"
    out.write_text(
        json.dumps(
            {
                "command": command_line(),
                "started": started,
                "facts": facts,
                "load_samples": load.samples,
                "series": {
                    s.tool: {"command": s.command, "samples": [vars(x) for x in s.samples], "median": s.median_wall()}
                    for s in rows
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
