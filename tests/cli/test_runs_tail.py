"""conveyor runs tail follows a run until it ends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor.tracking.store import TrackingStore, default_dsn

CONVEYOR = str(Path(sys.executable).parent / "conveyor")  # the console script beside this interpreter


def test_tail_follows_a_running_run_to_its_end(project_dir: Path, cli: Callable[..., Any]) -> None:
    run = subprocess.Popen([CONVEYOR, "-q", "run"], cwd=project_dir)
    try:
        deadline = time.monotonic() + 30
        while not (project_dir / ".conveyor" / "tracking.db").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        result = cli("runs", "tail", "--interval", "0.1", "--format", "json", cwd=project_dir)
    finally:
        run.wait(timeout=60)
    assert result.code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    final = lines[-1]
    assert final["status"] == "succeeded"
    events = lines[:-1]
    # every (relation, step) of the run appears, ending with the publish
    finished = {(e["relation"], e["step"]) for e in events if e["status"] == "succeeded"}
    assert ("*", "publish") in finished and ("mart.report", "build") in finished
    assert {e["run_id"] for e in events} == {final["run_id"]}


def test_tail_of_a_finished_run_prints_it_and_returns(project_dir: Path, cli: Callable[..., Any]) -> None:
    assert cli("-q", "run", cwd=project_dir).code == 0
    result = cli("runs", "tail", cwd=project_dir)
    assert result.code == 0
    assert "publish *" in result.stdout and "succeeded in" in result.stdout


# -- runs whose process was killed -----------------------------------------------------------

# a CTAS that works for an hour while the file "slow" exists in the load's folder, and at once
# without it: a load is killed in the middle of it, and its resume does not wait
SLOW = {
    "mart/slow.yaml": "name: mart.slow\nkind: ctas\n",
    "mart/slow.sql": (
        "SELECT o.id, o.amount\nFROM shop.orders AS o\n"
        "WHERE (SELECT count(*) FROM range((SELECT count(*) FROM glob('slow')) * 1000000000000) AS t(i)"
        " WHERE hash(i) % 7 = 0) >= 0\n"
    ),
}


def _store(root: Path) -> TrackingStore:
    return TrackingStore.open(default_dsn(root))


def _wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _step_running(store: TrackingStore, command: str, relation: str) -> str | None:
    for run in store.list_runs(command=command, status="running"):
        if any(e.relation == relation and e.status == "running" for e in store.run_events(run.run_id)):
            return run.run_id
    return None


def test_a_sigkilled_load_is_abandoned_tail_returns_and_resume_converges(
    make_project: Callable[..., Path], cli: Callable[..., Any], digest: Callable[[Path], dict[str, str]]
) -> None:
    root = make_project(designs=SLOW)
    assert cli("-q", "extract", cwd=root).code == 0
    (root / "slow").touch()
    load = subprocess.Popen([CONVEYOR, "-q", "load"], cwd=root)
    store = _store(root)
    try:
        run_id = _wait_for(lambda: _step_running(store, "load", "mart.slow"), "the load to build mart.slow")
        load.send_signal(signal.SIGKILL)
        assert load.wait(30) == -signal.SIGKILL
    finally:
        load.kill()
        load.wait()
        store.close()
    (root / "slow").unlink()
    assert list(root.glob(".conveyor_build_*.building"))  # the kept build

    listed = json.loads(cli("runs", "--command", "load", "--format", "json", cwd=root).stdout)
    assert [(r["run_id"], r["status"]) for r in listed] == [(run_id, "abandoned")]
    assert json.loads(cli("runs", "--status", "abandoned", "--format", "json", cwd=root).stdout) == listed
    assert "never recorded its end" in listed[0]["error"]
    shown = json.loads(cli("runs", "show", run_id, "--format", "json", cwd=root).stdout)
    steps = {(e["relation"], e["step"]): e["status"] for e in shown["events"]}
    assert steps[("mart.slow", "build")] == "abandoned" and steps[("shop.orders", "load")] == "succeeded"
    assert "running" not in steps.values()

    began = time.monotonic()
    tail = cli("runs", "tail", run_id, "--interval", "0.1", cwd=root, timeout=30)
    assert time.monotonic() - began < 20
    assert tail.code == 1
    assert f"Run {run_id} abandoned" in tail.stdout
    assert f"run {run_id} abandoned" in tail.stderr and "conveyor load --resume" in tail.stderr

    resumed = cli("load", "--resume", "--format", "json", cwd=root)
    assert resumed.code == 0, resumed.stderr
    assert f"resumed the build of run {run_id} (abandoned)" in json.loads(resumed.stdout)["notes"]
    again = json.loads(cli("runs", "show", "last", "--format", "json", cwd=root).stdout)
    rebuilt = {e["relation"] for e in again["events"] if e["step"] in ("load", "build")}
    assert "mart.slow" in rebuilt and "shop.orders" not in rebuilt  # only what had not finished
    assert not list(root.glob(".conveyor_build_*"))
    after_resume = digest(root / "warehouse.duckdb")

    assert cli("-q", "load", cwd=root).code == 0  # uninterrupted, from the same extracts
    assert digest(root / "warehouse.duckdb") == after_resume
    assert set(after_resume) == {
        "shop.customers", "shop.orders", "shop.products", "mart.customer_totals", "mart.slow",
        "mart.top_customers", "mart.report",
    }  # fmt: skip


# records a `run` that is killed while it extracts: it never began a build
EXTRACTING = """
import sys, time
from conveyor.tracking.store import TrackingStore, default_dsn
store = TrackingStore.open(default_dsn(sys.argv[1]))
run_id = store.start_run("run", project="testproj", environment="dev")
store.start_event(run_id, "shop.orders", "extract")
print(run_id, flush=True)
time.sleep(600)
"""


def test_resume_of_a_run_killed_before_its_build_began_loads_afresh(
    make_project: Callable[..., Path], cli: Callable[..., Any], digest: Callable[[Path], dict[str, str]]
) -> None:
    root = make_project()
    assert cli("-q", "run", cwd=root).code == 0
    expected = digest(root / "warehouse.duckdb")
    killed = subprocess.Popen([sys.executable, "-c", EXTRACTING, str(root)], stdout=subprocess.PIPE, text=True)
    assert killed.stdout is not None
    run_id = killed.stdout.readline().strip()
    killed.kill()
    killed.wait()
    killed.stdout.close()

    resumed = cli("load", "--resume", "--format", "json", cwd=root)
    assert resumed.code == 0, resumed.stderr
    assert f"run {run_id} died before its build began: loaded afresh" in json.loads(resumed.stdout)["notes"]
    assert digest(root / "warehouse.duckdb") == expected
    statuses = {r["run_id"]: r["status"] for r in json.loads(cli("runs", "--format", "json", cwd=root).stdout)}
    assert statuses[run_id] == "abandoned"
