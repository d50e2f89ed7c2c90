"""Catching up after the scheduler was down: one alert per pipeline, a prompt stop on SIGTERM,
and a reinstall that starts afresh. The scheduler is a real process on the documented clock
hook ``CONVEYOR_CLOCK``; alerts go to a real HTTP server on loopback.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .conftest import Hooks, SchedulerProcess, conveyor, install, iso, wait_for

pytestmark = pytest.mark.slow

T0 = datetime.fromisoformat("2026-06-15T00:00:00+00:00")


def minutely(hooks: Hooks, name: str, extra: str = "") -> str:
    """A minutely pipeline that alerts failures (and missed runs) to /NAME and pings /ping/NAME."""
    return (
        "schedule: cron * * * * *\nenvironments: {primary: dev}\nsteps: [extract]\ngrace: 10s\n"
        f"deadman: {hooks.base}/ping/{name}\n"
        f'notify: [{{url: "{hooks.json_url("/" + name)}", on: [failure]}}]\n{extra}'
    )


def caught_up(scheduler: SchedulerProcess) -> None:
    """Wait until the scheduler has finished its catch-up (it then schedules as usual)."""
    wait_for(lambda: "caught up with missed runs" in scheduler.output(), what="the catch-up to finish")


def missed_count(store: Any, name: str) -> int:
    return sum(1 for s in store.iter_all_slots() if s.pipeline == name and s.status == "missed")


def message(hooks: Hooks, path: str) -> str:
    (alert,) = hooks.received(path)
    return " ".join(alert.json()["message"].split())


def test_a_day_of_missed_minutely_slots_is_recorded_slot_by_slot_and_alerted_once(
    pipeline_project: Callable[..., Path],
    schedulers: Callable[..., SchedulerProcess],
    store_of: Callable[..., Any],
    hooks: Hooks,
) -> None:
    root = pipeline_project({"minutely": minutely(hooks, "minutely")})
    install(root, "minutely", iso(T0))
    store = store_of(root)
    down_until = T0 + timedelta(days=1, seconds=30)  # the newest slot is 30 s late: beyond its 10 s grace
    scheduler = schedulers(root, clock=down_until)
    caught_up(scheduler)

    assert missed_count(store, "minutely") == 1440  # every slot row stays, as missed
    assert hooks.paths() == ["/ping/minutely/fail", "/minutely"]
    text = message(hooks, "/minutely")
    first, last = iso(T0 + timedelta(minutes=1)), iso(T0 + timedelta(days=1))
    assert f"1440 runs scheduled from {first} to {last} were missed (scheduler down)" in text
    assert "1440 runs scheduled" in hooks.received("/ping/minutely/fail")[0].text
    assert conveyor(root, "runs", "--format", "json").json() == []  # nothing ran

    # killed and started again: nothing is recorded or alerted twice
    scheduler.kill()
    again = schedulers(root, clock=down_until + timedelta(seconds=5))
    caught_up(again)
    again.wait_heartbeats(store, 1.0)  # and ticked a while
    assert missed_count(store, "minutely") == 1440
    assert len(hooks.received()) == 2
    assert again.stop() == 0


def test_sigterm_during_a_long_catch_up_stops_the_scheduler_within_seconds(
    pipeline_project: Callable[..., Path],
    schedulers: Callable[..., SchedulerProcess],
    store_of: Callable[..., Any],
    hooks: Hooks,
) -> None:
    """Sixty days of a minutely pipeline (86,400 slots) take the scheduler a while to record;
    SIGTERM in the middle ends it within 5 s, with the slots recorded so far alerted once."""
    root = pipeline_project({"minutely": minutely(hooks, "minutely")})
    install(root, "minutely", iso(T0))
    store = store_of(root)
    scheduler = schedulers(root, clock=T0 + timedelta(days=60, seconds=30))
    wait_for(lambda: missed_count(store, "minutely") > 0, what="the catch-up to record missed slots")
    scheduler.signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert scheduler.wait(timeout=30) == 0, scheduler.output()
    assert time.monotonic() - stopped < 5.0, scheduler.output()
    assert "stopped catching up with missed runs" in scheduler.output()

    recorded = missed_count(store, "minutely")
    assert 0 < recorded < 60 * 1440  # it stopped part way
    assert hooks.paths("/minutely") == ["/minutely"]
    assert f"{recorded} runs scheduled from {iso(T0 + timedelta(minutes=1))}" in message(hooks, "/minutely")
    # the rest is caught up the next time: last_slot is where the recording stopped
    (row,) = [p for p in store.list_pipelines() if p.name == "minutely"]
    assert row.last_slot == T0 + timedelta(minutes=recorded)


def test_a_reinstall_with_a_new_schedule_or_after_remove_or_pause_starts_afresh(
    pipeline_project: Callable[..., Path],
    schedulers: Callable[..., SchedulerProcess],
    store_of: Callable[..., Any],
    hooks: Hooks,
) -> None:
    """Four pipelines installed at T0, then, a day later while the scheduler was down:
    "changed" reinstalled with a new schedule, "readded" removed and installed again, "paused"
    paused and installed again, "kept" installed again unchanged. Only "kept" catches up."""
    names = ("changed", "readded", "paused", "kept")
    root = pipeline_project({name: minutely(hooks, name) for name in names})
    for name in names:
        install(root, name, iso(T0))
    later = iso(T0 + timedelta(days=1))
    (root / "pipelines" / "changed.yaml").write_text(
        minutely(hooks, "changed").replace("cron * * * * *", "cron */5 * * * *")
    )
    install(root, "changed", later)
    assert conveyor(root, "pipeline", "remove", "readded").code == 0
    install(root, "readded", later)
    assert conveyor(root, "pipeline", "pause", "paused").code == 0
    install(root, "paused", later)
    install(root, "kept", later)

    store = store_of(root)
    start = T0 + timedelta(days=1, seconds=20)
    scheduler = schedulers(root, clock=start)
    caught_up(scheduler)
    assert {name: missed_count(store, name) for name in names} == {
        "changed": 0,
        "readded": 0,
        "paused": 0,
        "kept": 1440,
    }
    assert sorted(hooks.paths()) == ["/kept", "/ping/kept/fail"]
    listed = {p["name"]: p for p in conveyor(root, "pipeline", "list", "--format", "json").json()}
    assert listed["changed"]["next_run"] == iso(T0 + timedelta(days=1, minutes=5))
    assert listed["readded"]["next_run"] == listed["paused"]["next_run"] == iso(T0 + timedelta(days=1, minutes=1))
    assert scheduler.stop() == 0
