"""What bench/dag, bench/validate and bench/load_duckdb share: timing a whole process, its peak
RSS, the machine's load while measuring, medians and Markdown tables.

Each measured command runs in its own subprocess. Its wall time is taken around the whole
process (interpreter start-up, imports, connect and close included) and its peak RSS is
``ru_maxrss`` from ``wait4`` on that very child (Linux: the largest resident set of the child
and of the descendants it waited for), so no polling can miss a peak.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# the same environment for every tool: no telemetry or version checks over the network
QUIET_ENV = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "DO_NOT_TRACK": "1",
    "DBT_VERSION_CHECK": "False",
}


@dataclass
class Sample:
    wall: float
    rss_mb: float
    rc: int
    cpu: float = 0.0  # user + system seconds of the process and its waited-for children
    server_cpu: float | None = None  # the database server's CPU seconds during the run


@dataclass
class Series:
    """Every sample of one tool."""

    tool: str
    command: str
    samples: list[Sample] = field(default_factory=list)

    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.rc == 0]

    def median_wall(self) -> float | None:
        ok = self.ok()
        return statistics.median(s.wall for s in ok) if ok else None

    def median_rss(self) -> float | None:
        ok = self.ok()
        return statistics.median(s.rss_mb for s in ok) if ok else None

    def median_cpu(self) -> float | None:
        ok = self.ok()
        return statistics.median(s.cpu for s in ok) if ok else None

    def median_server_cpu(self) -> float | None:
        ok = [s.server_cpu for s in self.ok() if s.server_cpu is not None]
        return statistics.median(ok) if ok else None

    def spread(self) -> str:
        ok = self.ok()
        if not ok:
            return "-"
        return f"{min(s.wall for s in ok):.2f}-{max(s.wall for s in ok):.2f}"


def run_timed(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
    server: str | None = None,
) -> Sample:
    """Run ``cmd`` to its end; wall seconds, peak RSS (MB) and exit code of that process.

    ``server`` ("postgres" or "mysql") also records the database server's CPU seconds
    during the run (see ``server_cpu_seconds``).
    """
    full_env = {**os.environ, **QUIET_ENV, **(env or {})}
    server_before = server_cpu_seconds(server) if server else 0.0
    pids_before = server_pids(server) if server else set()
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=full_env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if server:
        settle_server(server, pids_before)
    server_cpu = server_cpu_seconds(server) - server_before if server else None
    return Sample(wall, usage.ru_maxrss / 1024, proc.returncode, usage.ru_utime + usage.ru_stime, server_cpu)


class LoadMonitor:
    """Samples the 1-minute load average every few seconds while the benchmark runs."""

    def __init__(self, every: float = 5.0):
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self) -> LoadMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "-"
        s = self.samples
        return f"min {min(s):.1f}, median {statistics.median(s):.1f}, max {max(s):.1f} ({len(s)} samples)"


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SERVER_PROCESSES = {"postgres": ("postgres",), "mysql": ("mariadbd", "mysqld")}


def server_pids(engine: str) -> set[int]:
    """The pids of the database server's processes now."""
    names = SERVER_PROCESSES[engine]
    found = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in names:
                found.add(int(comm.parent.name))
        except (OSError, ValueError):
            continue
    return found


def settle_server(engine: str, before: set[int], timeout: float = 5.0) -> None:
    """Wait until the backends a run started have exited and been reaped (at most ``timeout`` s).

    A PostgreSQL backend ends a moment after its client; until the postmaster reaps it, its CPU
    is in neither the live processes nor the postmaster's children counters.
    """
    deadline = time.monotonic() + timeout
    while server_pids(engine) - before and time.monotonic() < deadline:
        time.sleep(0.05)


def server_cpu_seconds(engine: str) -> float:
    """CPU seconds (user + system) the database server ``engine`` has used so far.

    Take it before and after a run: the difference is the server's share of that run.
    PostgreSQL runs a process per connection; when a connection ends, the postmaster reaps
    its process and the kernel adds its CPU to the postmaster's "children" counters, so the
    sum over live server processes plus the postmaster's reaped children counts every
    backend, finished or not. MariaDB is one process with a thread per connection.
    """
    names = SERVER_PROCESSES[engine]
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        if comm not in names:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        total += utime + stime
        if engine == "postgres" and ppid == 1:  # the postmaster: add its reaped backends
            total += cutime + cstime
    return total / _TICK


def machine_facts() -> dict[str, str]:
    def sh(cmd: str) -> str:
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception as exc:
            return f"({exc})"

    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    free = sh('free -h | awk \'NR==2{print $2" total, "$7" available"}\'')
    return {
        "nproc": sh("nproc"),
        "cpu": cpu,
        "memory": free,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def interleave(
    runs: int,
    tools: Sequence[str],
    one: Callable[[str, int], None],
) -> None:
    """Run ``one(tool, run)`` for run 1 of every tool, then run 2 ..., rotating the order each time,
    so a noisy neighbour hurts every tool alike."""
    for r in range(runs):
        order = list(tools[r % len(tools) :]) + list(tools[: r % len(tools)])
        for tool in order:
            one(tool, r + 1)


def table(rows: list[Series], reference: str, target_note: Callable[[Series], str] | None = None) -> str:
    """A Markdown table: median wall, spread, ratio to ``reference``'s median, median CPU, median peak RSS.

    CPU seconds (user + system) suffer less than wall time from a busy machine: a process
    waiting for a core is not charged for it.
    """
    ref = next((s.median_wall() for s in rows if s.tool == reference), None)
    head = (
        f"| tool | runs ok | median wall (s) | min-max (s) | ratio vs {reference} | median CPU (s) "
        "| median peak RSS (MB) |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for s in rows:
        med = s.median_wall()
        ratio = f"{med / ref:.2f}x" if med is not None and ref else "-"
        rss, cpu = s.median_rss(), s.median_cpu()
        lines.append(
            f"| {s.tool} | {len(s.ok())}/{len(s.samples)} | {med:.2f} | {s.spread()} | {ratio} "
            f"| {cpu:.2f} | {rss:.0f} |"
            if med is not None and rss is not None and cpu is not None
            else f"| {s.tool} | 0/{len(s.samples)} | failed | - | - | - | - |"
        )
    return "\n".join(lines)


def server_table(series: list[Series], reference: str) -> str:
    """A Markdown table of medians (wall, client CPU, server CPU, peak RSS) and the ratios to ``reference``:
    wall time, and client + server CPU (for tools that hand work to a database server)."""
    ref = next(s for s in series if s.tool == reference)
    ref_wall, ref_cpu, ref_server = ref.median_wall() or 0, ref.median_cpu() or 0, ref.median_server_cpu() or 0
    lines = [
        "| tool | runs ok | median wall (s) | min-max (s) | client CPU (s) | server CPU (s) | peak RSS (MB) "
        f"| wall vs {reference} | client+server CPU vs {reference} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in series:
        wall, cpu, server, rss = s.median_wall(), s.median_cpu(), s.median_server_cpu(), s.median_rss()
        if wall is None or cpu is None or server is None or rss is None or not ref_wall:
            lines.append(f"| {s.tool} | 0/{len(s.samples)} | failed | | | | | | |")
            continue
        total_ref = (ref_cpu + ref_server) or 1.0
        lines.append(
            f"| {s.tool} | {len(s.ok())}/{len(s.samples)} | {wall:.2f} | {s.spread()} | {cpu:.2f} | {server:.2f} "
            f"| {rss:.0f} | {wall / ref_wall:.2f}x | {(cpu + server) / total_ref:.2f}x |"
        )
    return "\n".join(lines)


def command_line() -> str:
    """The command that started this script, as it could be typed again."""
    here = Path.cwd()
    try:
        script = str(Path(sys.argv[0]).resolve().relative_to(here))
    except ValueError:
        script = sys.argv[0]
    return shlex.join(["python3", script, *sys.argv[1:]])
