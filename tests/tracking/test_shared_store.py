"""One PostgreSQL tracking store shared by two "hosts": processes with different ``CONVEYOR_HOST_ID``.

Each host is a real process (``python -c``) on this machine; with different host ids they
treat each other as on different machines, so a holder's pid means nothing to the other and
only heartbeats and lease expiry tell whether it is alive. The store lives in a database
created for this module (``pg_database``), in a schema of its own per test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor.tracking.host import host_id
from conveyor.tracking.models import parse_ts

from .test_store import REPO_ROOT, Target

pytestmark = pytest.mark.postgres


@pytest.fixture
def shared(pg_database: str) -> Target:
    import secrets

    return Target(pg_database, f"shared_{secrets.token_hex(6)}", "postgres")


def on_host(
    target: Target, host: str, script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Run ``script`` as host ``host``: ``sys.argv[1:]`` is the DSN, the schema, then ``args``.

    Its stdout is a pipe (one line per thing it has done), its stdin a pipe it may wait on.
    """
    full_env = {**os.environ, "CONVEYOR_HOST_ID": host, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", script, target.dsn, target.schema, *args],
        cwd=REPO_ROOT, env=full_env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def finished(process: subprocess.Popen[str], timeout: float = 120.0) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"exit {process.returncode}:\n{out}\n{err}"
    return out


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
    return value


# -- the host id -----------------------------------------------------------------------------

RECORD_SCRIPT = """
import sys
from conveyor.tracking.store import TrackingStore
dsn, schema = sys.argv[1:3]
store = TrackingStore.open(dsn, schema=schema)
run_id = store.start_run("run", project="p")
store.acquire_lock("some-lock", "holder", ttl_s=60)
store.finish_run(run_id, "succeeded")
print(run_id, flush=True)
"""


def test_the_host_id_is_recorded_with_runs_and_locks_and_defaults_to_the_host_name(shared: Target) -> None:
    import socket

    run_a = finished(on_host(shared, "host-a", RECORD_SCRIPT)).strip()
    assert shared.execute("SELECT host FROM runs WHERE run_id = ?", (run_a,)) == [("host-a",)]
    assert shared.execute("SELECT host FROM locks WHERE name = 'some-lock'") == [("host-a",)]
    shared.execute("DELETE FROM locks")
    run_b = finished(on_host(shared, "  ", RECORD_SCRIPT)).strip()  # blank: not set
    assert shared.execute("SELECT host FROM runs WHERE run_id = ?", (run_b,)) == [(socket.gethostname(),)]
    assert shared.execute("SELECT host FROM locks WHERE name = 'some-lock'") == [(socket.gethostname(),)]


def test_host_id_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("CONVEYOR_HOST_ID", "etl-2")
    assert host_id() == "etl-2"
    monkeypatch.delenv("CONVEYOR_HOST_ID")
    assert host_id() == socket.gethostname()


# -- runs from two hosts at once -------------------------------------------------------------

RUNS_SCRIPT = """
import sys
from conveyor.tracking.store import TrackingStore
dsn, schema, count, events = sys.argv[1:5]
store = TrackingStore.open(dsn, schema=schema)
print("ready", flush=True)
sys.stdin.readline()  # both hosts start together
for i in range(int(count)):
    run_id = store.start_run("run", project="p", environment=f"env{i % 3}")
    for j in range(int(events)):
        event = store.start_event(run_id, f"rel_{j}", "extract")
        store.finish_event(event, "succeeded", rows=i * 100 + j)
    store.finish_run(run_id, "failed" if i % 5 == 4 else "succeeded")
    print(run_id, flush=True)
"""


def _start_together(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()


def test_concurrent_runs_from_two_hosts_are_all_recorded_with_their_host(shared: Target) -> None:
    count, events = 25, 4
    hosts = {name: on_host(shared, name, RUNS_SCRIPT, str(count), str(events)) for name in ("host-a", "host-b")}
    _start_together(list(hosts.values()))
    written = {name: finished(process).split() for name, process in hosts.items()}

    with shared.open() as store:
        runs = store.list_runs(limit=1000)
        assert len(runs) == 2 * count
        by_id = {run.run_id: run for run in runs}
        for name, ids in written.items():
            assert len(ids) == len(set(ids)) == count
            for i, run_id in enumerate(ids):
                run = by_id[run_id]
                assert (run.host, run.status, run.environment) == (
                    name,
                    "failed" if i % 5 == 4 else "succeeded",
                    f"env{i % 3}",
                )
                got = [(e.relation, e.status, e.rows) for e in store.run_events(run_id)]
                assert sorted(got) == [(f"rel_{j}", "succeeded", i * 100 + j) for j in range(events)]
        assert store.abandon_dead_runs() == []  # nothing was left running


# -- locks across hosts ----------------------------------------------------------------------

HOLD_SCRIPT = """
import sys
from conveyor.config.pipelines import PipelineConfig
from conveyor.errors import UserError
from conveyor.pipeline.locks import hold, lock_names
from conveyor.tracking.store import TrackingStore
dsn, schema, run_id = sys.argv[1:4]
store = TrackingStore.open(dsn, schema=schema)
config = PipelineConfig.model_validate({"schedule": "nightly at 02:30 UTC", "environments": {"primary": "prod"}})
try:
    with hold(store, lock_names("nightly", config), run_id):
        print("holding", flush=True)
        sys.stdin.readline()
except UserError as exc:
    print(exc.render(), flush=True)
    sys.exit(2)
"""

LOCK_SCRIPT = """
import sys
from conveyor.tracking.store import TrackingStore
dsn, schema, name, ttl = sys.argv[1:5]
store = TrackingStore.open(dsn, schema=schema)
print("acquired" if store.acquire_lock(name, "holder", ttl_s=float(ttl)) else "refused", flush=True)
sys.stdin.readline()
"""


def test_a_lock_held_on_host_a_refuses_host_b_naming_host_a(shared: Target) -> None:
    first = on_host(shared, "host-a", HOLD_SCRIPT, "run-on-a")
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "holding"
        second = on_host(shared, "host-b", HOLD_SCRIPT, "run-on-b")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 2, out + err
        assert "pipeline nightly is busy: another run holds it" in out
        assert "run-on-a@host-a:" in out, out  # the run and the host that hold it
        assert "Traceback" not in out + err
    finally:
        first.kill()
        first.wait(10)


def test_a_killed_holder_on_another_host_keeps_its_lock_until_it_expires(shared: Target) -> None:
    """Host B cannot see host A's pid: only the lock's expiry frees it (on one host, the dead pid would)."""
    ttl = 4.0
    holder = on_host(shared, "host-a", LOCK_SCRIPT, "shared-lock", str(ttl))
    assert holder.stdout is not None and holder.stdout.readline().strip() == "acquired"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    killed_at = time.monotonic()

    def try_b() -> str:
        process = on_host(shared, "host-b", LOCK_SCRIPT, "shared-lock", "60")
        assert process.stdout is not None
        answer = process.stdout.readline().strip()
        process.kill()
        process.wait(10)
        return answer

    assert try_b() == "refused"  # the pid is dead, but on "another machine"
    wait_for(lambda: try_b() == "acquired", 30, "host B to take the expired lock")
    assert time.monotonic() - killed_at >= ttl - 1.0  # not before the lease ran out (1 s of slack)
    assert shared.execute("SELECT host FROM locks WHERE name = 'shared-lock'") == [("host-b",)]


# -- extract state from two hosts ------------------------------------------------------------

EXTRACTS_SCRIPT = """
import random, sys
from conveyor.tracking.store import TrackingStore
dsn, schema, host, seed, count = sys.argv[1:6]
store = TrackingStore.open(dsn, schema=schema)
rng = random.Random(int(seed))
run_id = store.start_run("extract", project="p")
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(count)):
    table = rng.choice(["orders", "customers", "items"])
    extract_id = f"{host}-{i:03d}"
    store.start_extract(run_id, "shop", table, extract_id, upstream_table=table)
    status = rng.choice(["succeeded", "succeeded", "failed"])
    high = f'{{"value": "{host}-{i:03d}"}}' if status == "succeeded" else None
    store.finish_extract(extract_id, status, rows=i, watermark_high=high, error=None if high else "boom")
store.finish_run(run_id, "succeeded")
print("done", flush=True)
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_extract_state_updated_from_two_hosts_stays_consistent(shared: Target, seed: int) -> None:
    count = 40
    hosts = [on_host(shared, name, EXTRACTS_SCRIPT, name, str(seed * 10 + n), str(count))
             for n, name in enumerate(("host-a", "host-b"))]  # fmt: skip
    _start_together(hosts)
    for process in hosts:
        assert finished(process).split() == ["done"]

    with shared.open() as store:
        attempts = {e.extract_id: e for e in store.list_extracts(limit=1000)}
        assert len(attempts) == 2 * count
        assert Counter(e.status for e in attempts.values()) == Counter(
            e.status for e in attempts.values() if e.status in ("succeeded", "failed")
        )
        state = store.extract_state("shop")
        assert {s.table_name for s in state} == {e.table_name for e in attempts.values()}
        for row in state:
            latest = attempts[row.last_extract_id]
            assert latest.table_name == row.table_name
            # the latest attempt is the one started last for this table
            started_last = max(
                (e for e in attempts.values() if e.table_name == row.table_name), key=lambda e: e.started_at
            )
            assert row.last_extract_id == started_last.extract_id
            assert (row.status, row.rows) == (latest.status, latest.rows)
            successes = [e for e in attempts.values() if e.table_name == row.table_name and e.status == "succeeded"]
            if successes:
                success = attempts[row.last_success_extract_id]  # type: ignore[index]
                assert success.status == "succeeded" and success.table_name == row.table_name
                # the watermark is the one its last success committed, never a failed attempt's
                assert row.watermark == success.watermark_high
                assert row.watermark == store.watermark("shop", row.table_name)
            else:
                assert row.watermark is None and row.last_success_extract_id is None


# -- a run killed on host A ------------------------------------------------------------------

RUN_SCRIPT = """
import sys, time
from conveyor.tracking.store import TrackingStore
dsn, schema = sys.argv[1:3]
store = TrackingStore.open(dsn, schema=schema)
run_id = store.start_run("run", project="p")
store.start_event(run_id, "main.orders", "extract")
print(run_id, flush=True)
sys.stdin.readline()
"""


def test_a_run_killed_on_host_a_is_abandoned_by_host_b_only_after_its_heartbeat_lease(shared: Target) -> None:
    lease = 4.0
    env = {"CONVEYOR_RUN_LEASE_S": str(lease)}  # heartbeats every second
    runner = on_host(shared, "host-a", RUN_SCRIPT, env=env)
    assert runner.stdout is not None
    run_id = runner.stdout.readline().strip()

    def host_b_abandons() -> list[str]:
        """What host B's reader marks abandoned (as every `conveyor runs` does)."""
        script = (
            "import sys\nfrom conveyor.tracking.store import TrackingStore\n"
            "print(' '.join(TrackingStore.open(sys.argv[1], schema=sys.argv[2]).abandon_dead_runs()))"
        )
        return finished(on_host(shared, "host-b", script, env=env)).split()

    # alive and heart-beating: longer than a lease, host B leaves it alone
    alive_until = time.monotonic() + lease * 1.5
    while time.monotonic() < alive_until:
        assert host_b_abandons() == []
        time.sleep(0.5)
    ((beat,),) = shared.execute("SELECT heartbeat_at FROM runs WHERE run_id = ?", (run_id,))
    last_beat = parse_ts(str(beat))

    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(10)
    killed_at = time.monotonic()
    assert host_b_abandons() == []  # its pid is dead, but host B cannot know that
    wait_for(lambda: host_b_abandons() == [run_id], 30, "host B to abandon the run")
    assert time.monotonic() - killed_at >= lease - 1.5  # not before the lease (less one beat) ran out

    with shared.open() as store:
        run = store.get_run(run_id)
        assert (run.status, run.host) == ("abandoned", "host-a")
        assert run.error is not None and "stopped heart-beating" in run.error and "host-a" in run.error
        # it ended at its last sign of life, its last heartbeat
        assert last_beat is not None and run.finished_at is not None
        assert last_beat <= run.finished_at <= datetime.now(UTC)
        assert [(e.relation, e.status) for e in store.run_events(run_id)] == [("main.orders", "abandoned")]


def test_a_live_run_on_host_a_taken_for_dead_revives_with_its_next_heartbeat(shared: Target) -> None:
    """Abandoned by host B (here: forced) while alive, the run on host A heartbeats it back to running."""
    env = {"CONVEYOR_RUN_LEASE_S": "2"}
    runner = on_host(shared, "host-a", RUN_SCRIPT, env=env)
    try:
        assert runner.stdout is not None
        run_id = runner.stdout.readline().strip()
        shared.execute("UPDATE runs SET status = 'abandoned', error = 'x' WHERE run_id = ?", (run_id,))
        wait_for(
            lambda: shared.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)) == [("running",)],
            20,
            "the run to be running again",
        )
    finally:
        runner.kill()
        runner.wait(10)


# -- slots claimed from two hosts ------------------------------------------------------------

CLAIM_SCRIPT = """
import sys
from datetime import datetime, timedelta, timezone
from conveyor.tracking.store import TrackingStore
dsn, schema, host, count = sys.argv[1:5]
store = TrackingStore.open(dsn, schema=schema)
print("ready", flush=True)
sys.stdin.readline()
start = datetime(2026, 6, 15, 2, 30, tzinfo=timezone.utc)
for i in range(int(count)):
    slot = start + timedelta(minutes=i)
    if store.claim_slot("nightly", slot, f"{host}-{i}"):
        print(slot.isoformat(), flush=True)
"""


def test_each_slot_is_claimed_by_exactly_one_of_two_hosts_racing_for_it(shared: Target) -> None:
    count = 200
    hosts = {name: on_host(shared, name, CLAIM_SCRIPT, name, str(count)) for name in ("host-a", "host-b")}
    _start_together(list(hosts.values()))
    won = {name: finished(process).split() for name, process in hosts.items()}
    assert len(won["host-a"]) + len(won["host-b"]) == count  # every slot once
    assert not set(won["host-a"]) & set(won["host-b"])  # never by both
    rows = shared.execute("SELECT scheduled_at, run_id FROM pipeline_slots WHERE pipeline = 'nightly'")
    assert len(rows) == count
    for scheduled_at, run_id in rows:
        winner = str(run_id).rsplit("-", 1)[0]
        when = parse_ts(str(scheduled_at))
        assert when is not None and when.isoformat() in won[winner]
