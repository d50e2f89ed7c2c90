"""Scheduler failover: two ``conveyor scheduler`` processes on two "hosts" (``CONVEYOR_HOST_ID``)
share one PostgreSQL tracking store, created for each test.

One leads (it holds the ``scheduler`` lease and renews it every poll), the other waits as a
standby. When host A loses power (its scheduler and its run are SIGKILLed), host B takes the
lease within ``scheduler.lease_s``, never starts the dead host's slot again, marks that run
abandoned once its heartbeat lease (``CONVEYOR_RUN_LEASE_S``) has expired, and alerts it through
the pipeline's failure notification and dead-man switch, on a real HTTP server on loopback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from testkit.services import pg_database as fresh_pg_database

from conveyor.tracking.store import TrackingStore

from .conftest import WAIT_FOR_GO, Hooks, SchedulerProcess, add_environments, install, runs_of, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LEASE_S = 4.0
RUN_LEASE_S = 6.0
INSTALLED = "2026-06-15T02:00:00+00:00"
SLOT = datetime.fromisoformat("2026-06-15T02:30:00+00:00")


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"2026-06-15T{text}+00:00")


@pytest.fixture
def pg_tracking() -> Iterator[str]:
    """A fresh PostgreSQL database for this test's tracking store, dropped afterwards."""
    with fresh_pg_database("conveyor_test_failover") as dsn:
        yield dsn


@pytest.fixture
def shared_project(
    pipeline_project: Callable[..., Path], pg_tracking: str, hooks: Hooks
) -> Iterator[tuple[Path, TrackingStore]]:
    """A project whose tracking store is the test's PostgreSQL database, with a short scheduler lease.

    ``nightly`` (its setup waits for the file "go") alerts failures to ``/nightly`` and pings
    its dead-man at ``/ping/nightly``; ``later`` runs once at 02:30:40, on other environments.
    """

    def alerts(name: str) -> str:
        return f'deadman: {hooks.base}/ping/{name}\nnotify: [{{url: "{hooks.json_url("/" + name)}", on: [failure]}}]\n'

    root = pipeline_project({
        "nightly": "schedule: nightly at 02:30 UTC\nenvironments: {primary: dev, secondary: dev2}\n"
        f"setup: ['{WAIT_FOR_GO}']\n" + alerts("nightly"),
        "later": "schedule: once at 2026-06-15T02:30:40+00:00\nenvironments: {primary: dev3}\nsteps: [extract]\n"
        + alerts("later"),
    })  # fmt: skip
    add_environments(root, "dev3")
    settings = root / "conveyor.yaml"
    settings.write_text(settings.read_text() + f"tracking:\n  dsn: {pg_tracking}\nscheduler:\n  lease_s: {LEASE_S}\n")
    install(root, "nightly", INSTALLED)
    install(root, "later", INSTALLED)
    store = TrackingStore.open(pg_tracking)
    try:
        yield root, store
    finally:
        (root / "go").touch()
        _kill_runs(store)
        store.close()


def _kill_runs(store: TrackingStore) -> None:
    """Kill run processes left behind (those of this store's running slots, checked by their run id)."""
    for slot in store.iter_all_slots():
        pid = (slot.detail or {}).get("pid")
        if slot.status == "running" and pid:
            with contextlib.suppress(OSError):
                if str(slot.run_id) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    os.killpg(int(pid), signal.SIGKILL)


def on_host(host: str) -> dict[str, str]:
    return {"CONVEYOR_HOST_ID": host, "CONVEYOR_RUN_LEASE_S": str(RUN_LEASE_S)}


def leader(store: TrackingStore) -> Any:
    holder = store.lock_holder("scheduler")
    return holder if holder is not None and not holder.expired() else None


def test_the_standby_takes_over_within_the_lease_and_abandons_and_alerts_the_dead_hosts_run(
    shared_project: tuple[Path, TrackingStore], schedulers: Callable[..., SchedulerProcess], hooks: Hooks
) -> None:
    root, store = shared_project
    first = schedulers(root, clock=at("02:29:58"), env=on_host("host-a"))
    first.wait_started(store)
    second = schedulers(root, clock=at("02:29:58"), env=on_host("host-b"))
    wait_for(lambda: "standby" in second.output(), what="the second scheduler to wait as a standby")
    assert "host-a" in second.output()  # it names the leader's host
    assert second.process.poll() is None and leader(store).host == "host-a"

    # host A starts the 02:30 run; the standby starts nothing
    run = wait_for(lambda: next(iter(store.list_runs(pipeline="nightly", status="running")), None), what="a run")
    assert run.host == "host-a"
    slot = store.get_slot("nightly", SLOT)
    assert slot is not None and (slot.status, slot.run_id, slot.detail["host"]) == ("running", run.run_id, "host-a")

    # host A loses power: its scheduler and its run die at once
    first.kill()
    os.killpg(int(slot.detail["pid"]), signal.SIGKILL)
    killed = time.monotonic()
    renewed = store.lock_holder("scheduler")
    assert renewed is not None

    second.wait_started(store, timeout=LEASE_S + 20)
    took = time.monotonic() - killed
    holder = store.lock_holder("scheduler")
    assert holder is not None and holder.host == "host-b"
    # within the lease of the last renewal, plus a poll or two (a second each at most)
    assert took <= LEASE_S + 3, f"took over after {took:.1f} s"
    assert holder.acquired_at >= renewed.expires_at  # not before the dead leader's lease ran out

    # the dead host's run: abandoned once its heartbeat lease expired, alerted, never rerun
    (alert,) = hooks.wait("/nightly", timeout=RUN_LEASE_S + 30)
    abandoned = store.get_run(run.run_id)
    assert abandoned.status == "abandoned" and "stopped heart-beating" in (abandoned.error or "")
    assert "host-a" in alert.text and "abandoned" in alert.text and run.run_id in alert.text
    (ping,) = hooks.wait("/ping/nightly/fail")
    assert run.run_id in ping.text
    slot = store.get_slot("nightly", SLOT)
    assert slot is not None and (slot.status, slot.run_id) == ("abandoned", run.run_id)
    assert [(r["run_id"], r["status"]) for r in runs_of(root, "nightly")] == [(run.run_id, "abandoned")]

    # the new leader schedules: the next slot (another pipeline's) runs on host B
    later = wait_for(
        lambda: next((s for s in store.slots("later") if s.status != "running"), None), 60, "the 02:30:40 run"
    )
    assert later.status == "succeeded", second.output()
    assert store.get_run(str(later.run_id)).host == "host-b"
    assert "starting nightly" not in second.output()
    assert [r["status"] for r in runs_of(root, "nightly")] == ["abandoned"]  # still one run: never rerun
    assert hooks.paths("/nightly") == ["/nightly"] and hooks.paths("/later") == []  # alerted once
    assert second.stop() == 0
    assert store.lock_holder("scheduler") is None  # a stopped leader lets its lease go


def test_a_standby_stops_on_sigterm_and_a_stopped_leader_hands_over_at_once(
    shared_project: tuple[Path, TrackingStore], schedulers: Callable[..., SchedulerProcess]
) -> None:
    root, store = shared_project
    first = schedulers(root, clock=at("02:00:00"), env=on_host("host-a"))
    first.wait_started(store)
    standby = schedulers(root, clock=at("02:00:00"), env=on_host("host-b"))
    wait_for(lambda: "standby" in standby.output(), what="a standby")
    assert standby.stop() == 0  # a standby stops at once
    assert leader(store).host == "host-a"

    third = schedulers(root, clock=at("02:00:00"), env=on_host("host-c"))
    wait_for(lambda: "standby" in third.output(), what="another standby")
    stopped = time.monotonic()
    assert first.stop() == 0  # a clean stop releases the lease: no need to wait for it to expire
    third.wait_started(store, timeout=LEASE_S + 20)
    assert time.monotonic() - stopped < LEASE_S, "the standby waited for the released lease to expire"
    assert leader(store).host == "host-c"
    assert third.stop() == 0


def test_a_leader_that_stalls_past_its_lease_loses_it_and_becomes_a_standby(
    shared_project: tuple[Path, TrackingStore], schedulers: Callable[..., SchedulerProcess]
) -> None:
    """A leader frozen longer than its lease (SIGSTOP: a paused VM, a long GC) finds, when it
    wakes, that a standby took over: it says so, starts nothing and waits as a standby."""
    root, store = shared_project
    first = schedulers(root, clock=at("02:00:00"), env=on_host("host-a"))
    first.wait_started(store)
    second = schedulers(root, clock=at("02:00:00"), env=on_host("host-b"))
    wait_for(lambda: "standby" in second.output(), what="a standby")

    os.kill(first.pid, signal.SIGSTOP)
    try:
        second.wait_started(store, timeout=LEASE_S + 20)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    wait_for(lambda: "lost its lease" in first.output(), 30, "the old leader to notice")
    said = " ".join(first.output().split())
    assert "lost its lease to scheduler@host-b" in said and "on host host-b" in said
    wait_for(lambda: first.output().count("standby:") >= 1, 30, "the old leader to wait as a standby")
    second.wait_heartbeats(store, 2 * LEASE_S / 4)  # still the leader, a while later
    assert leader(store).host == "host-b" and first.process.poll() is None
    assert second.stop() == 0
    first.wait_started(store, timeout=LEASE_S + 20)  # and it leads again once the other stops
    assert first.stop() == 0


@pytest.fixture
def stalling_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers no POST until the test ends (a hung alert endpoint)."""
    release = threading.Event()
    posts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posts.append(self.path)
            release.wait(60)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_leader_busy_longer_than_its_lease_keeps_it(
    pipeline_project: Callable[..., Path],
    pg_tracking: str,
    stalling_server: str,
    schedulers: Callable[..., SchedulerProcess],
) -> None:
    """A leader whose tick takes longer than the lease (here: alerting missed runs to a dead-man
    URL that never answers, 3 tries of 5 s) keeps renewing its lease: the standby waits."""
    root = pipeline_project({
        "missed": f"schedule: nightly at 02:30 UTC\nenvironments: {{primary: dev}}\ndeadman: {stalling_server}/ping\n",
    })  # fmt: skip
    settings = root / "conveyor.yaml"
    settings.write_text(settings.read_text() + f"tracking:\n  dsn: {pg_tracking}\nscheduler:\n  lease_s: {LEASE_S}\n")
    install(root, "missed", INSTALLED)
    with TrackingStore.open(pg_tracking) as store:
        first = schedulers(root, clock=datetime.fromisoformat("2026-06-18T12:00:00+00:00"), env=on_host("host-a"))
        first.wait_started(store)
        wait_for(lambda: "were missed" in first.output(), what="the missed-runs alert to start")
        second = schedulers(root, clock=datetime.fromisoformat("2026-06-18T12:00:00+00:00"), env=on_host("host-b"))
        wait_for(lambda: "standby" in second.output(), what="a standby")
        busy_until = time.monotonic() + 3 * LEASE_S  # the alert still hangs meanwhile
        while time.monotonic() < busy_until:
            assert leader(store).host == "host-a", second.output()
            time.sleep(0.2)
        assert "caught up" not in first.output()  # it was still alerting all along
        assert "stopped renewing its lease" not in second.output()
        assert second.stop() == 0
        first.kill()


def test_a_scheduler_on_a_sqlite_store_is_still_refused_beside_another(
    pipeline_project: Callable[..., Path], schedulers: Callable[..., SchedulerProcess], store_of: Callable[..., Any]
) -> None:
    """SQLite is one host's store: no standby there, a second scheduler is refused as before."""
    root = pipeline_project({"nightly": "schedule: nightly at 02:30 UTC\nenvironments: {primary: dev}\n"})
    store = store_of(root)
    first = schedulers(root, env={"CONVEYOR_HOST_ID": "host-a"})
    first.wait_started(store)
    second = schedulers(root, env={"CONVEYOR_HOST_ID": "host-b"})
    assert second.wait() == 2
    refused = " ".join(second.output().split())
    assert "another scheduler is already running on this tracking store" in refused
    assert f"(scheduler@host-a:{first.pid} since " in refused and "standby" in refused  # the hint
    assert "Traceback" not in refused
    assert first.stop() == 0
