"""Start-up cost of the Conveyor CLI, beside the interpreter's own: ``python -c pass``.

    python3 bench/startup/run.py --runs 10

Commands, each a fresh process timed whole (``bench/dag/measure.py``'s ``run_timed``: wall
time around the process, CPU = user + system seconds, peak RSS from ``wait4``), interleaved
(run 1 of every command, then run 2 ..., the order rotated each time), medians reported:

* ``python -c pass``: the floor, the venv's Python starting and stopping;
* ``conveyor --help``: the console script, building the command list;
* ``conveyor ls``, ``conveyor validate``, ``conveyor runs``: on a copy of examples/shop
  (``generate.py --scale 0.1`` and one ``conveyor run`` first, untimed, so that the lake,
  the warehouse and the run history exist).

Then ``python -X importtime`` of ``conveyor --help`` (once, after the timed runs): the
modules that cost the most, cumulative (top-level imports) and self.

The console script is the venv's (``--venv``, default the one of /work/main or of this
checkout), with ``PYTHONPATH`` set to this checkout, so the code measured is this tree's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench" / "dag"))
from measure import LoadMonitor, Series, command_line, interleave, machine_facts, run_timed, table  # noqa: E402


def default_venv() -> Path:
    for candidate in (ROOT / ".venv", Path("/work/main/.venv")):
        if (candidate / "bin" / "conveyor").exists():
            return candidate
    return Path(sys.prefix)


def prepare(venv: Path, scale: float, env: dict[str, str]) -> Path:
    """A copy of examples/shop with its upstream database, and one run done."""
    project = Path(tempfile.mkdtemp(prefix="conveyor-startup-")) / "shop"
    shutil.copytree(ROOT / "examples" / "shop", project, ignore=shutil.ignore_patterns("upstream", "lake", "warehouse"))
    python, conveyor = str(venv / "bin" / "python"), str(venv / "bin" / "conveyor")
    full = {**os.environ, **env}
    subprocess.run(
        [python, "generate.py", "--scale", f"{scale:g}"], cwd=project, env=full, check=True, stdout=subprocess.DEVNULL
    )
    subprocess.run([conveyor, "run", "-q"], cwd=project, env=full, check=True, stdout=subprocess.DEVNULL)
    return project


def importtime(venv: Path, env: dict[str, str], top: int) -> str:
    """The costliest imports of ``conveyor --help``, from ``python -X importtime``."""
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-X", "importtime", str(venv / "bin" / "conveyor"), "--help"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    rows: list[tuple[int, int, str, int]] = []  # self us, cumulative us, module, depth
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((int(self_us), int(cumulative_us), name.strip(), depth))
    total = sum(r[0] for r in rows)
    lines = [f"{len(rows)} modules imported, {total / 1e6:.2f} s of import time in all (one run, -X importtime)", ""]
    lines += ["| top-level import | cumulative (ms) |", "|---|---|"]
    for _self_us, cumulative_us, name, _depth in sorted((r for r in rows if r[3] == 0), key=lambda r: -r[1])[:top]:
        lines.append(f"| `{name}` | {cumulative_us / 1000:.0f} |")
    # who pulls the weight in: the direct imports of the heaviest top-level ones (a module's
    # children are the deeper lines printed just before it)
    lines += ["", "| heavy top-level import | its direct imports, cumulative (ms) |", "|---|---|"]
    tops = sorted((i for i, r in enumerate(rows) if r[3] == 0), key=lambda i: -rows[i][1])[:3]
    for i in tops:
        start = max((j for j in range(i) if rows[j][3] == 0), default=-1) + 1
        children = sorted((r for r in rows[start:i] if r[3] == 1), key=lambda r: -r[1])[:6]
        listed = ", ".join(f"`{r[2]}` {r[1] / 1000:.0f}" for r in children)
        lines.append(f"| `{rows[i][2]}` ({rows[i][1] / 1000:.0f}) | {listed} |")
    lines += ["", "| module (self time) | self (ms) |", "|---|---|"]
    for self_us, _, name, _ in sorted(rows, key=lambda r: -r[0])[:top]:
        lines.append(f"| `{name}` | {self_us / 1000:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10); medians reported")
    parser.add_argument(
        "--venv", type=Path, default=default_venv(), help="the venv with conveyor (default: %(default)s)"
    )
    parser.add_argument("--scale", type=float, default=0.1, help="scale of examples/shop/generate.py (default 0.1)")
    parser.add_argument("--top", type=int, default=15, help="rows of the import-time tables (default 15)")
    options = parser.parse_args()

    env = {"PYTHONPATH": str(ROOT), "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
    python, conveyor = str(options.venv / "bin" / "python"), str(options.venv / "bin" / "conveyor")
    project = prepare(options.venv, options.scale, env)
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "conveyor --help": [conveyor, "--help"],
        "conveyor ls": [conveyor, "ls"],
        "conveyor validate": [conveyor, "validate"],
        "conveyor runs": [conveyor, "runs"],
    }
    facts = machine_facts()
    series = {name: Series(name, " ".join(cmd)) for name, cmd in commands.items()}
    log = project.parent / "startup.log"

    def one(name: str, run: int) -> None:
        sample = run_timed(commands[name], cwd=project, env=env, log=log)
        series[name].samples.append(sample)
        print(f"run {run:2} {name:>18}: {sample.wall:5.2f} s  CPU {sample.cpu:5.2f} s  rc {sample.rc}", flush=True)

    with LoadMonitor(every=2.0) as monitor:
        interleave(options.runs, list(commands), one)
    failed = [name for name, s in series.items() if len(s.ok()) < len(s.samples)]
    print(f"\n{command_line()}")
    print(f"{facts['nproc']} CPUs ({facts['cpu']}), Python {facts['python']}, venv {options.venv}")
    print(f"1-minute load average: {monitor.summary()}\n")
    print(table(list(series.values()), "python -c pass"))
    if failed:
        print(f"\nfailed runs: {', '.join(failed)} (output in {log})")
    print()
    print(importtime(options.venv, env, options.top))
    shutil.rmtree(project.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
