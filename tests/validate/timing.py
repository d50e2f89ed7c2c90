"""Time ``conveyor validate`` on a generated project: cold (no caches) and warm, in process and as a command.

    .venv/bin/python -m tests.validate.timing --relations 1000 --runs 5

In process, ``validate()`` is timed alone (imports excluded), wall and CPU seconds, median of
the runs; "cold" removes the parse and bind caches before each run. As a command, the whole process
is timed (interpreter start and imports included). Upstream drift is included in a separate
line (50 SQLite source tables); the rest use ``sources=False`` (``--skip-sources``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from conveyor.project import CACHE_FILE
from conveyor.validate import validate
from conveyor.validate.bindcache import BIND_CACHE_FILE

from .conftest import SHIM
from .genproject import generate


def _measure(action: Callable[[], object], before: Callable[[], None], runs: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(runs):
        before()
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _command(root: Path, *args: str) -> float:
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", SHIM, "-p", str(root), "validate", *args],
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--relations", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = generate(Path(tempfile.mkdtemp(prefix="conveyor-timing-")) / "project", args.relations)

    def cold() -> None:
        for cache in (CACHE_FILE, BIND_CACHE_FILE):
            (root / cache).unlink(missing_ok=True)

    def nothing() -> None:
        return None

    report = validate(root, sources=False)
    assert report.ok and report.relations == args.relations, [p.render() for p in report.problems]
    load = os.getloadavg()[0]
    print(f"{args.relations} relations, {args.runs} runs, load average {load:.1f} on {os.cpu_count()} CPUs")
    rows = [
        ("validate(sources=False), cold", _measure(lambda: validate(root, sources=False), cold, args.runs)),
        ("validate(sources=False), warm", _measure(lambda: validate(root, sources=False), nothing, args.runs)),
        ("validate() with drift, warm", _measure(lambda: validate(root), nothing, args.runs)),
    ]
    for label, (wall, cpu) in rows:
        print(f"  {label:<34} wall {wall:6.3f} s   cpu {cpu:6.3f} s")
    for label, prepare in (("cold", cold), ("warm", nothing)):
        walls = []
        for _ in range(args.runs):
            prepare()
            walls.append(_command(root, "--skip-sources"))
        print(f"  {'conveyor validate --skip-sources, ' + label:<34} wall {statistics.median(walls):6.3f} s (process)")
    shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
