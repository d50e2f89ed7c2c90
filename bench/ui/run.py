"""Server time of the web dashboard's pages over a tracking store of 10,000 runs (target: the runs
page in 100 ms or less).

    python3 bench/ui/run.py                     # 10,000 runs, 10 events each, 30 requests per page
    python3 bench/ui/run.py --runs 100000 --requests 20

Setup, untimed: the test project (tests/conftest.py) in a temporary folder, one real ``conveyor
run`` (so the store exists, migrated), then ``--runs`` generated finished runs with
``--events`` events each (tests/testkit/history.py: commands, pipelines, two environments,
about 8% failed), written straight into the SQLite store. Then ``conveyor ui --port 0`` starts
as users start it, and each page is requested ``--requests`` times after 3 warm-ups, the pages
interleaved (one request of each, then the next round).

Two figures per page: the server's own time, from its ``Server-Timing`` header (the request's
arrival at the app to its response's start: the store queried, the page rendered), and the
wall time a client on loopback sees for the whole response (httpx, one kept-alive connection).
Medians and 95th percentiles, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from testkit.cli import CONVEYOR, cli_env  # noqa: E402
from testkit.history import generate_runs  # noqa: E402

from tests.conftest import build_project  # noqa: E402
from tests.web.dashboard import settings  # noqa: E402


def start_ui(root: Path) -> tuple[subprocess.Popen[str], str]:
    env = cli_env({"PYTHONPATH": str(ROOT)})
    process = subprocess.Popen(
        [CONVEYOR, "ui", "--port", "0"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"http://\S+/", "".join(lines))
        if found:
            return process, found.group(0).rstrip("/")
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"conveyor ui did not start: {''.join(lines)}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10, help="events per generated run")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-ui-") as folder:
        root = build_project(Path(folder) / "project", settings=settings())  # with pipeline nightly
        done = subprocess.run([CONVEYOR, "run", "-q"], cwd=root, env=cli_env({"PYTHONPATH": str(ROOT)}), check=False)
        if done.returncode != 0:
            raise SystemExit("the project's run failed")
        subprocess.run([CONVEYOR, "pipeline", "install", "nightly"], cwd=root, env=cli_env({"PYTHONPATH": str(ROOT)}),
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        started = time.perf_counter()
        history = generate_runs(
            root / ".conveyor" / "tracking.db",
            args.runs,
            newest=datetime.now(UTC) - timedelta(hours=1),
            events_per_run=args.events,
        )
        print(
            f"generated {history.runs:,} runs and {history.events:,} events in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        process, url = start_ui(root)
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                deep = client.get("/api/runs", params={"limit": 500}).json()["runs"][-1]["run_id"]
                for _ in range(int(args.runs * 0.9) // 500 - 1):
                    deep = client.get("/api/runs", params={"limit": 500, "before": deep}).json()["next_before"]
                day = history.oldest.date() + timedelta(days=5)
                pages = {
                    "runs page, first 50": "/",
                    "runs page, 50 older than 90% of the runs": f"/?before={deep}",
                    "runs page, status=failed": "/?status=failed",
                    "runs page, environment=prod": "/?environment=prod",
                    "runs page, one day": f"/?date={day.isoformat()}",
                    "runs page, pipeline+environment+status, deep": (
                        f"/?pipeline=nightly&environment=prod&status=failed&before={deep}"
                    ),
                    "/api/runs (50)": "/api/runs",
                    "run page (10 events)": f"/runs/{history.failed[len(history.failed) // 2]}",
                    "relation page (its newest 60 of ~20,000 events)": "/relations/mart.customer_totals",
                    "lineage JSON (the whole test project)": "/api/lineage?focus=mart.report&up=10&down=10",
                    "extracts page (3 source tables, freshness from the lake)": "/extracts",
                    "pipelines page (1 pipeline, its last 5 of ~1,000 runs)": "/pipelines",
                }
                server: dict[str, list[float]] = {name: [] for name in pages}
                wall: dict[str, list[float]] = {name: [] for name in pages}
                for round_number in range(args.requests + 3):
                    for name, path in pages.items():
                        began = time.perf_counter()
                        response = client.get(path)
                        took = (time.perf_counter() - began) * 1000
                        response.raise_for_status()
                        if round_number >= 3:
                            timing = re.search(r"app;dur=([\d.]+)", response.headers["server-timing"])
                            assert timing is not None
                            server[name].append(float(timing.group(1)))
                            wall[name].append(took)
        finally:
            process.terminate()
            process.wait(timeout=20)

    print(f"\n{args.runs:,} runs, {args.events} events each; {args.requests} requests per page; load {os.getloadavg()}")
    print("| page | server median (ms) | server p95 (ms) | client wall median (ms) | client wall p95 (ms) |")
    print("|---|---|---|---|---|")
    for name in pages:
        print(
            f"| {name} | {statistics.median(server[name]):.1f} | {percentile(server[name], 0.95):.1f} "
            f"| {statistics.median(wall[name]):.1f} | {percentile(wall[name], 0.95):.1f} |"
        )


if __name__ == "__main__":
    main()
