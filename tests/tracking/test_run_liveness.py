"""Runs whose process died are abandoned, on both backends: a real SIGKILLed process, a pid
reused by another process, a run on another host that stopped heart-beating, and heartbeats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.tracking import runs as store_module
from conveyor.tracking.liveness import process_start
from conveyor.tracking.models import format_ts
from conveyor.tracking.store import TrackingStore

from .test_store import Target

# starts a run with one finished and one running step, says so, and works until killed
RUNNER = """
import sys, time
from conveyor.tracking.store import TrackingStore
dsn, schema = sys.argv[1:3]
store = TrackingStore.open(dsn, schema=schema)
run_id = store.start_run("load", project="p", environment="dev")
store.finish_event(store.start_event(run_id, "shop.orders", "load"), "succeeded", rows=3)
store.start_event(run_id, "mart.slow", "build")
print(run_id, flush=True)
time.sleep(600)
"""


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not a conveyor run."""
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


def test_a_sigkilled_run_and_its_running_step_read_as_abandoned(store: TrackingStore, target: Target) -> None:
    child = target.run_python(RUNNER, stdout=subprocess.PIPE)
    try:
        run_id = child.stdout.readline().strip()
        alive = store.get_run(run_id)
        assert alive.status == "running"  # read while it works: untouched
        assert alive.pid == child.pid and alive.process_start == process_start(child.pid)
        assert alive.heartbeat_at is not None and alive.heartbeat_at >= alive.started_at
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()

    (run,) = store.list_runs(status="abandoned")
    assert run.run_id == run_id and run.status == "abandoned"
    assert f"pid {child.pid}" in (run.error or "") and "never recorded its end" in (run.error or "")
    assert run.finished_at is not None and run.started_at <= run.finished_at <= datetime.now(UTC)
    steps = {(e.relation, e.step): e for e in store.run_events(run_id)}
    assert steps["shop.orders", "load"].status == "succeeded"
    slow = steps["mart.slow", "build"]
    assert slow.status == "abandoned" and slow.finished_at is not None and slow.duration_s is not None
    assert slow.error == "the run's process died during this step"
    assert store.abandon_dead_runs() == []  # once


def test_a_pid_reused_by_another_process_does_not_keep_a_run_running(
    store: TrackingStore, target: Target, sleeper: subprocess.Popen[bytes]
) -> None:
    reused, same = store.start_run("load", project="p"), store.start_run("load", project="p")
    target.execute("UPDATE runs SET pid = ?, process_start = 'another-boot:1' WHERE run_id = ?", (sleeper.pid, reused))
    target.execute(
        "UPDATE runs SET pid = ?, process_start = ? WHERE run_id = ?", (sleeper.pid, process_start(sleeper.pid), same)
    )
    assert store.get_run(same).status == "running"  # the very process that started it
    run = store.get_run(reused)
    assert run.status == "abandoned" and "belongs to another process" in (run.error or "")


def test_a_run_on_another_host_is_abandoned_once_its_heartbeat_expires(store: TrackingStore, target: Target) -> None:
    now = datetime.now(UTC)
    ages = {"stale": 121.0, "fresh": 60.0, "older_conveyor": None}
    ids = {name: store.start_run("run", project="p") for name in ages}
    for name, age in ages.items():
        beat = None if age is None else format_ts(now - timedelta(seconds=age))
        target.execute(
            "UPDATE runs SET host = 'elsewhere.example', pid = 1, heartbeat_at = ? WHERE run_id = ?", (beat, ids[name])
        )
    assert {name: store.get_run(ids[name]).status for name in ages} == {
        "stale": "abandoned",  # four heartbeats missed
        "fresh": "running",
        "older_conveyor": "running",  # no heartbeat to judge by
    }
    assert "elsewhere.example" in (store.get_run(ids["stale"]).error or "")


def test_a_dead_run_of_an_older_conveyor_on_this_host_is_abandoned(store: TrackingStore, target: Target) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_id = store.start_run("run", project="p")
    target.execute(
        "UPDATE runs SET pid = ?, process_start = NULL, heartbeat_at = NULL WHERE run_id = ?",
        (int(dead.stdout), run_id),
    )
    assert [r.run_id for r in store.list_runs(statuses=("abandoned", "failed"))] == [run_id]


def test_the_heartbeat_beats_until_the_run_finishes_and_revives_a_run_taken_for_dead(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "RUN_HEARTBEAT_S", 0.05)
    with target.open() as opened:
        run_id = opened.start_run("run", project="p")
        first = opened.get_run(run_id).heartbeat_at
        assert first is not None
        _wait(lambda: opened.get_run(run_id).heartbeat_at > first)  # type: ignore[operator]

        # another host took it for dead while its heartbeats could not get through
        target.execute("UPDATE runs SET status = 'abandoned', error = 'x' WHERE run_id = ?", (run_id,))
        _wait(lambda: opened.get_run(run_id).status == "running")
        assert opened.get_run(run_id).error is None

        opened.finish_run(run_id, "succeeded")
        last = opened.get_run(run_id).heartbeat_at
        time.sleep(0.3)
        assert opened.get_run(run_id).heartbeat_at == last
        assert opened.get_run(run_id).status == "succeeded"


def test_a_run_marked_abandoned_that_finishes_after_all_takes_its_real_status(store: TrackingStore) -> None:
    run_id = store.start_run("run", project="p")
    assert store._abandon(store.get_run(run_id), "its process is gone")
    assert store.get_run(run_id).status == "abandoned"
    store.finish_run(run_id, "succeeded")
    run = store.get_run(run_id)
    assert (run.status, run.error) == ("succeeded", None)


def _wait(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
