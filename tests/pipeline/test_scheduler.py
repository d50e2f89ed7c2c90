"""The scheduler as a real process: crashes, restarts, missed runs, one scheduler per store,
SIGTERM, locks, timeouts. Clocks use the documented ``CONVEYOR_CLOCK`` hook (a UTC schedule,
so the times read plainly); the pipelines' setup commands wait for a file the test creates,
so "a run in progress" is a state the test controls, not a race.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conveyor.config.pipelines import PipelineConfig
from conveyor.pipeline import scheduler as scheduler_module
from conveyor.pipeline import worker
from conveyor.pipeline.locks import lock_names
from conveyor.tracking.store import TrackingStore

from .conftest import (
    WAIT_FOR_GO,
    Hooks,
    SchedulerProcess,
    add_environments,
    conveyor,
    install,
    iso,
    run_events,
    runs_of,
    wait_for,
)

pytestmark = pytest.mark.slow

SLOT = datetime.fromisoformat("2026-06-15T02:30:00+00:00")
INSTALLED = "2026-06-15T02:00:00+00:00"


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"2026-06-15T{text}+00:00")


def waiting(
    schedule: str = "nightly at 02:30 UTC", envs: str = "{primary: dev, secondary: dev2}", extra: str = ""
) -> str:
    """A pipeline whose setup waits until the test creates the file "go"."""
    return f"schedule: {schedule}\nenvironments: {envs}\nsetup: ['{WAIT_FOR_GO}']\n{extra}"


def slot_rows(store: TrackingStore, name: str) -> list[tuple[str, str, str | None]]:
    return [(iso(s.scheduled_at), s.status, s.run_id) for s in store.slots(name)]


def finished_slot(store: TrackingStore, name: str, timeout: float = 45.0, slot: datetime | None = None) -> Any:
    """Wait until a slot of ``name`` (the newest, or the one at ``slot``) has finished; return it."""

    def finished() -> Any:
        found = [s for s in store.slots(name) if slot is None or s.scheduled_at == slot]
        return found[0] if found and found[0].status != "running" else None

    return wait_for(finished, timeout, f"a finished {name} slot")


def setup_running(store: TrackingStore, name: str) -> str:
    """Wait until a run of ``name`` is in its setup step; return its run id."""

    def running() -> str | None:
        for run in store.list_runs(pipeline=name, status="running"):
            if any(e.status == "running" for e in run_events(store, run.run_id, "setup")):
                return run.run_id
        return None

    return str(wait_for(running, what=f"a run of {name} in its setup step"))


# -- crashes and restarts --------------------------------------------------------------------


def test_a_run_started_by_a_scheduler_killed_before_it_noted_the_child_is_not_started_twice(
    pipeline_project: Callable[..., Path], schedulers: Callable[..., SchedulerProcess], store_of: Callable[..., Any]
) -> None:
    """The state a scheduler killed between starting the child and noting its pid leaves: a
    claimed slot, and a live worker (``--run-id``) the new scheduler was never told about,
    which (still starting up) has neither taken its locks nor recorded its run."""
    root = pipeline_project({"nightly": waiting()})
    install(root, "nightly", INSTALLED)
    store = store_of(root)
    run_id = "20260615T023000Z-orphan"
    assert store.claim_slot("nightly", SLOT, run_id)
    args = worker.argv(str(root), "nightly", run_id, SLOT)
    gate = (  # the child of the dead scheduler, held at its start until the file "start" exists
        "import os, sys, time\n"
        "while not os.path.exists('start'): time.sleep(0.05)\n"
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
    )
    log = (root / "orphan.log").open("wb")
    orphan = subprocess.Popen(
        [sys.executable, "-c", gate, *args], cwd=root, stdout=log, stderr=log, start_new_session=True
    )
    try:
        scheduler = schedulers(root, clock=at("02:30:05"))
        scheduler.wait_clock_past(store, at("02:30:08"))  # it has looked at the slot, several times
        assert "starting nightly" not in scheduler.output()  # and started no second run
        assert store.list_runs(pipeline="nightly") == []
        (root / "start").touch()
        assert setup_running(store, "nightly") == run_id
        (root / "go").touch()
        assert orphan.wait(60) == 0
    finally:
        (root / "start").touch()
        (root / "go").touch()
        orphan.wait(60)
        log.close()
    slot = finished_slot(store, "nightly")
    assert (slot.status, slot.run_id) == ("succeeded", run_id)
    assert [(r["run_id"], r["status"]) for r in runs_of(root, "nightly")] == [(run_id, "succeeded")]
    assert "starting nightly" not in scheduler.output()
    assert scheduler.stop() == 0


def test_a_scheduler_killed_mid_run_runs_nothing_twice_and_leaves_no_slot_running(
    pipeline_project: Callable[..., Path], schedulers: Callable[..., SchedulerProcess], store_of: Callable[..., Any]
) -> None:
    """SIGKILL the scheduler while two runs are in their setup step. The run of "lives" goes on
    (a child outlives its scheduler); the run of "dies" is SIGKILLed too (a power cut for it).
    The next scheduler takes the dead one's lock, starts neither again, takes over the dead
    run's locks at once (not after their 60 s expiry) and records it abandoned, and sees the
    other run through to its end."""
    root = pipeline_project({"lives": waiting(), "dies": waiting(envs="{primary: dev3}")})
    add_environments(root, "dev3")
    install(root, "lives", INSTALLED)
    install(root, "dies", INSTALLED)
    store = store_of(root)
    first = schedulers(root, clock=at("02:29:58"))
    lives, dies = setup_running(store, "lives"), setup_running(store, "dies")
    first.kill()
    child = int(store.slots("dies")[0].detail["pid"])
    os.killpg(child, signal.SIGKILL)
    wait_for(lambda: not _alive_pid(child), what="the killed run to be gone")
    assert store.lock_holder("pipeline:dies") is not None  # left behind by the dead run

    second = schedulers(root, clock=at("02:30:30"))
    second.wait_started(store)  # it took over the dead scheduler's lock
    slot = finished_slot(store, "dies", timeout=30)
    assert (slot.status, slot.run_id) == ("abandoned", dies)
    (run,) = runs_of(root, "dies")
    assert (run["run_id"], run["status"]) == (dies, "abandoned") and "never recorded its end" in run["error"]
    events = conveyor(root, "runs", "show", dies, "--format", "json").json()["events"]
    assert [(e["step"], e["status"]) for e in events] == [("setup", "abandoned")]

    assert store.slots("lives")[0].status == "running"  # its run is still going
    (root / "go").touch()
    slot = finished_slot(store, "lives")
    assert (slot.status, slot.run_id) == ("succeeded", lives)
    assert [(r["run_id"], r["status"]) for r in runs_of(root, "lives")] == [(lives, "succeeded")]
    assert "starting" not in second.output()  # it started nothing
    assert second.stop() == 0
    assert len(runs_of(root, "lives")) == len(runs_of(root, "dies")) == 1


def _alive_pid(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_missed_runs_the_newest_within_grace_runs_once_older_ones_are_missed_and_alerted(
    pipeline_project: Callable[..., Path],
    schedulers: Callable[..., SchedulerProcess],
    store_of: Callable[..., Any],
    hooks: Hooks,
) -> None:
    root = pipeline_project(
        {
            "within": f"""\
                schedule: nightly at 02:30 UTC
                environments: {{primary: dev}}
                deadman: {hooks.base}/ping/within
                notify: [{{url: "{hooks.json_url("/within")}", on: [failure]}}]
                """,
            # its slot was claimed by a scheduler that died before starting the run
            "claimed": "schedule: nightly at 02:30 UTC\nenvironments: {primary: dev3}\n",
            # URLs with secrets, as the docs say to write them; the scheduler resolves them too
            "late": """\
                schedule: nightly at 01:00 UTC
                environments: {primary: dev2}
                grace: 30 min
                deadman: ${HOOK_BASE}/ping/late
                notify: [{url: "json://${HOOK_HOST}/late", on: [failure]}]
                """,
        }
    )
    add_environments(root, "dev3")
    for name in ("within", "claimed", "late"):
        install(root, name, "2026-06-13T12:00:00+00:00")
    store = store_of(root)
    # the scheduler that died claimed these slots but never started their runs
    assert store.claim_slot("claimed", at("02:30:00"), "20260615T023000Z-dead01")  # within grace: runs
    assert store.claim_slot("late", at("01:00:00"), "20260615T010000Z-dead02")  # beyond grace: missed

    env = {"HOOK_BASE": hooks.base, "HOOK_HOST": f"127.0.0.1:{hooks.port}"}
    first = schedulers(root, clock=at("02:45:00"), env=env)  # 15 min after within's slot, 1 h 45 after late's
    finished_slot(store, "within", slot=at("02:30:00"))
    finished_slot(store, "claimed", slot=at("02:30:00"))
    hooks.wait("/late")
    hooks.wait("/ping/late/fail")

    assert slot_rows(store, "within")[0][:2] == ("2026-06-15T02:30:00+00:00", "succeeded")
    assert [r[:2] for r in slot_rows(store, "within")[1:]] == [("2026-06-14T02:30:00+00:00", "missed")]
    assert [r[:2] for r in slot_rows(store, "late")] == [
        ("2026-06-15T01:00:00+00:00", "missed"),
        ("2026-06-14T01:00:00+00:00", "missed"),
    ]
    assert [r["status"] for r in runs_of(root, "within")] == ["succeeded"]
    claimed = [(r["run_id"], r["status"]) for r in runs_of(root, "claimed")]
    assert claimed == [("20260615T023000Z-dead01", "succeeded")]  # under the claimed run id
    assert slot_rows(store, "claimed")[0] == ("2026-06-15T02:30:00+00:00", "succeeded", "20260615T023000Z-dead01")
    assert runs_of(root, "late") == []
    # both missed slots of "late" (one claimed by the dead scheduler) in one alert
    (alert,) = [r.json() for r in hooks.received("/late")]
    assert "missed" in alert["title"] and alert["type"] == "failure"
    assert "2 runs scheduled from 2026-06-14T01:00:00+00:00 to 2026-06-15T01:00:00+00:00 were missed" in " ".join(
        alert["message"].split()
    )
    (ping,) = hooks.received("/ping/late/fail")
    assert "pipeline late missed" in ping.text
    assert [r.json()["message"].split("scheduled for ")[1][:25] for r in hooks.received("/within")] == [
        "2026-06-14T02:30:00+00:00"
    ]
    assert hooks.paths("/ping/within") == ["/ping/within/fail", "/ping/within/start", "/ping/within"]

    # killed and started again a little later: nothing runs twice, nothing is alerted twice
    first.kill()
    second = schedulers(root, clock=at("02:50:00"), env=env)
    second.wait_clock_past(store, at("02:50:02"))
    assert len(runs_of(root, "within")) == 1 and len(runs_of(root, "claimed")) == 1
    assert len(slot_rows(store, "within")) == 2 and len(slot_rows(store, "late")) == 2
    assert len(hooks.received("/late")) == 1 and len(hooks.received("/within")) == 1
    assert second.stop() == 0


# -- stopping ------------------------------------------------------------------------------------


def test_sigterm_lets_the_running_step_finish_and_starts_nothing_new_and_a_second_scheduler_is_refused(
    pipeline_project: Callable[..., Path],
    schedulers: Callable[..., SchedulerProcess],
    store_of: Callable[..., Any],
    hooks: Hooks,
) -> None:
    root = pipeline_project(
        {
            "nightly": waiting(extra=f'notify: [{{url: "{hooks.json_url("/hook")}", on: [success, failure]}}]\n'),
            # installed once the scheduler stops taking runs, with its slot due at once
            "later": "schedule: once at 2026-06-15T02:30:00+00:00\nenvironments: {primary: dev3}\n",
        }
    )
    add_environments(root, "dev3")
    install(root, "nightly", INSTALLED)
    store = store_of(root)
    scheduler = schedulers(root, clock=at("02:29:58"))
    run_id = setup_running(store, "nightly")

    # one scheduler per store: a second one refuses, naming the holder
    second = schedulers(root)
    assert second.wait() == 2
    refused = " ".join(second.output().split())
    assert "another scheduler is already running on this tracking store" in refused
    assert f"(scheduler@{socket.gethostname()}:{scheduler.pid} since " in refused
    assert scheduler.process.poll() is None

    scheduler.signal(signal.SIGTERM)
    wait_for(lambda: "stopping: no new runs" in scheduler.output(), what="the scheduler to stop taking runs")
    install(root, "later", INSTALLED)  # due now: a scheduler taking runs would start it at its next tick
    scheduler.wait_heartbeats(store, 1.0)  # five poll intervals while it waits for its run
    assert scheduler.process.poll() is None
    assert store.slots("later") == []

    (root / "go").touch()  # the setup step finishes; the rest is cancelled
    assert scheduler.wait() == 0, scheduler.output()
    slot = store.slots("nightly")[0]
    assert (slot.status, slot.run_id) == ("cancelled", run_id)
    (run,) = runs_of(root, "nightly")
    assert run["status"] == "cancelled"
    steps = conveyor(root, "runs", "show", run_id, "--format", "json").json()
    assert [(e["relation"], e["step"], e["status"]) for e in steps["events"]] == [(WAIT_FOR_GO, "setup", "succeeded")]
    assert steps["summary"]["steps"] == [
        {
            "step": "extract",
            "environment": None,
            "ok": False,
            "attempts": 1,
            "error": "stopped before this step (SIGTERM)",
        }
    ]
    assert "cancelled" in hooks.wait("/hook")[0].json()["title"]
    assert store.slots("later") == []


# -- locks -----------------------------------------------------------------------------------------


def test_runs_never_overlap_busy_slots_wait_and_a_manual_run_is_refused(
    pipeline_project: Callable[..., Path],
    schedulers: Callable[..., SchedulerProcess],
    store_of: Callable[..., Any],
) -> None:
    """ "a" (dev, dev2) and "b" (dev) are both due at 02:30 while a manual run of "b" holds dev.
    Both slots wait; then they run one after the other. A manual run of a busy pipeline or
    environment fails with a clear "busy" message and exit code 2."""
    root = pipeline_project(
        {
            # extract only, to be quick: the locks are the environments', whatever the steps
            "a": "schedule: nightly at 02:30 UTC\nenvironments: {primary: dev, secondary: dev2}\nsteps: [extract]\n",
            "b": waiting(envs="{primary: dev}", extra="steps: [extract]\n"),
        }
    )
    install(root, "a", INSTALLED)
    install(root, "b", INSTALLED)
    store = store_of(root)
    log = (root / "manual.log").open("wb")
    manual = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "-p", str(root), "pipeline", "run", "b"], stdout=log, stderr=log
    )
    try:
        manual_run = setup_running(store, "b")
        scheduler = schedulers(root, clock=at("02:29:58"))
        scheduler.wait_clock_past(store, at("02:30:03"))
        assert store.slots("a") == [] and store.slots("b") == []  # both wait for dev

        busy = conveyor(root, "pipeline", "run", "b")
        assert busy.code == 2
        assert "pipeline b is busy: another run holds it" in busy.stderr and manual_run in busy.stderr
        busy_env = conveyor(root, "pipeline", "run", "a")
        assert busy_env.code == 2
        assert "environment dev is busy" in busy_env.stderr and manual_run in busy_env.stderr
    finally:
        (root / "go").touch()
        manual.wait(60)
        log.close()
    assert manual.returncode == 0
    finished_slot(store, "a")
    finished_slot(store, "b")
    assert scheduler.stop() == 0

    runs = [r for name in ("a", "b") for r in runs_of(root, name)]
    assert sorted(r["status"] for r in runs) == ["succeeded"] * 3
    spans = sorted((r["started_at"], r["finished_at"]) for r in runs)
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans)), spans


# -- one-off pipelines, pause, resume, remove, show ------------------------------------------------


def test_once_pause_resume_remove_and_show(
    pipeline_project: Callable[..., Path], schedulers: Callable[..., SchedulerProcess], store_of: Callable[..., Any]
) -> None:
    when = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0).isoformat()
    root = pipeline_project(
        {
            "one": f"schedule: once at {when}\nenvironments: {{primary: dev}}\nsteps: [extract]\n",
            "held": f"schedule: once at {when}\nenvironments: {{primary: dev2}}\nsteps: [extract]\n",
            "gone": waiting(f"once at {when}", "{primary: dev3}", "steps: [extract]\n"),
        }
    )
    add_environments(root, "dev3")
    for name in ("one", "held", "gone"):
        install(root, name)
    assert conveyor(root, "pipeline", "pause", "held").code == 0
    store = store_of(root)
    scheduler = schedulers(root)

    finished_slot(store, "one")
    gone_run = setup_running(store, "gone")
    # pause and remove while it runs: the run goes on (it stays in its setup step for now)
    assert conveyor(root, "pipeline", "pause", "gone").code == 0
    removed = conveyor(root, "pipeline", "remove", "gone")
    assert removed.code == 0 and "Removed pipeline gone" in removed.stdout

    listed = {p["name"]: p for p in conveyor(root, "pipeline", "list", "--format", "json").json()}
    assert sorted(listed) == ["gone", "held", "one"]
    assert listed["gone"]["status"] == listed["gone"]["definition"] == "not installed"  # its file is still there
    one = listed["one"]
    assert (one["status"], one["last_status"], one["next_run"]) == ("done", "succeeded", None)
    assert listed["held"]["status"] == "paused" and listed["held"]["last_run"] is None

    # resumed after its moment passed: a run missed while paused is not made up
    assert conveyor(root, "pipeline", "resume", "held").code == 0
    wait_for(lambda: status_of(root, "held") == "done", what="held to be done")
    assert store.slots("held") == [] and runs_of(root, "held") == []

    # Ctrl-C: a terminal sends SIGINT to its whole foreground process group. The run of "gone"
    # must not get it; it gets the scheduler's SIGTERM, finishes its step, cancels the rest.
    os.killpg(scheduler.pid, signal.SIGINT)
    wait_for(lambda: "stopping: no new runs" in scheduler.output(), what="the scheduler to stop taking runs")
    (root / "go").touch()
    assert scheduler.wait() == 0, scheduler.output()
    (gone,) = runs_of(root, "gone")  # removed, and its history stays
    assert (gone["run_id"], gone["status"]) == (gone_run, "cancelled")
    events = conveyor(root, "runs", "show", gone_run, "--format", "json").json()["events"]
    assert [(e["step"], e["status"]) for e in events] == [("setup", "succeeded")]
    assert len(runs_of(root, "one")) == 1 and len(store.slots("one")) == 1

    shown = conveyor(root, "pipeline", "show", "one")
    assert shown.code == 0, shown.output
    assert f"schedule: once at {when}" in shown.stdout
    assert "1. extract" in shown.stdout
    assert runs_of(root, "one")[0]["run_id"][:20] in shown.stdout
    as_json = conveyor(root, "pipeline", "show", "one", "--format", "json").json()
    assert as_json["steps"] == ["extract"]
    assert [r["status"] for r in as_json["runs"]] == ["succeeded"]


def status_of(root: Path, name: str) -> str:
    return str({p["name"]: p["status"] for p in conveyor(root, "pipeline", "list", "--format", "json").json()}[name])


# -- timeouts ------------------------------------------------------------------------------------


def test_a_run_over_its_timeout_is_stopped_and_recorded_failed(
    pipeline_project: Callable[..., Path],
    schedulers: Callable[..., SchedulerProcess],
    store_of: Callable[..., Any],
    hooks: Hooks,
) -> None:
    root = pipeline_project(
        {
            "slow": f"""\
                schedule: nightly at 02:30 UTC
                environments: {{primary: dev}}
                timeout: 3s
                setup: ["sleep 120"]
                notify: [{{url: "{hooks.json_url("/hook")}"}}]
                """
        }
    )
    install(root, "slow", INSTALLED)
    store = store_of(root)
    scheduler = schedulers(root, clock=at("02:29:58"))
    slot = finished_slot(store, "slow")
    assert slot.status == "failed"
    (run,) = conveyor(root, "runs", "--pipeline", "slow", "--status", "failed", "--format", "json").json()
    assert run["run_id"] == slot.run_id
    assert "timed out" in run["error"] or "timeout" in run["error"], run["error"]
    assert scheduler.stop() == 0
    assert not [p for p in Path("/proc").glob("[0-9]*") if _is_sleep_of(p, root)]


def _is_sleep_of(proc: Path, root: Path) -> bool:
    try:
        return b"sleep\x00120" in (proc / "cmdline").read_bytes() and (proc / "cwd").resolve() == root
    except OSError:
        return False


def test_a_run_killed_by_something_else_is_abandoned_and_so_is_its_slot(
    pipeline_project: Callable[..., Path], schedulers: Callable[..., SchedulerProcess], store_of: Callable[..., Any]
) -> None:
    """SIGKILL from outside (the out-of-memory killer, say): the run could not record its end.
    The scheduler records it abandoned, naming the signal, and the slot takes that status."""
    root = pipeline_project({"nightly": waiting()})
    install(root, "nightly", INSTALLED)
    store = store_of(root)
    scheduler = schedulers(root, clock=at("02:29:58"))
    run_id = setup_running(store, "nightly")
    os.kill(int(store.slots("nightly")[0].detail["pid"]), signal.SIGKILL)
    slot = finished_slot(store, "nightly")
    assert (slot.status, slot.run_id) == ("abandoned", run_id)
    (run,) = runs_of(root, "nightly")
    assert run["status"] == "abandoned" and "ended with SIGKILL before it recorded its end" in run["error"]
    assert scheduler.stop() == 0


def test_a_run_that_ignores_sigterm_is_killed(
    pipeline_project: Callable[..., Path], store_of: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler's escalation, in this process with a short grace: SIGTERM, then SIGKILL."""
    root = pipeline_project({"stuck": "schedule: nightly at 02:30 UTC\nenvironments: {primary: dev}\ntimeout: 1s\n"})
    install(root, "stuck", INSTALLED)
    store = store_of(root)
    monkeypatch.setattr(scheduler_module, "KILL_AFTER_S", 0.3)
    config = PipelineConfig.model_validate(store.get_pipeline("stuck").definition)
    run_id = "20260615T023000Z-stuck1"
    assert store.claim_slot("stuck", SLOT, run_id)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *_: print('SIGTERM ignored', flush=True))\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    scheduler = scheduler_module.Scheduler(store, poll_s=0.05)
    scheduler.children["stuck"] = scheduler_module.Child(
        "stuck", SLOT, run_id, process, time.monotonic() - 1, config=config, locks=lock_names("stuck", config)
    )

    began = time.monotonic()

    def reaped() -> bool:
        scheduler._reap()  # what each tick of the scheduler does
        return not scheduler.children

    wait_for(reaped, timeout=20, what="the stuck run to end")
    assert process.returncode == -signal.SIGKILL
    assert time.monotonic() - began >= 0.3
    assert process.stdout.readline() == b"SIGTERM ignored\n"
    slot = store.get_slot("stuck", SLOT)
    assert (slot.status, slot.detail["stopped"]) == ("failed", "timeout")
    run = store.get_run(run_id)
    assert run.status == "failed" and "exceeded its timeout of 1 s" in (run.error or "")


# -- what the scheduler says -----------------------------------------------------------------------


def test_the_scheduler_says_when_each_pipeline_runs_how_each_run_ended_and_when_nothing_is_installed(
    pipeline_project: Callable[..., Path], schedulers: Callable[..., SchedulerProcess], store_of: Callable[..., Any]
) -> None:
    """Started in a terminal, a scheduler that prints nothing but "started" looks stuck."""
    root = pipeline_project({"nightly": "schedule: nightly at 02:30 UTC\nenvironments: {primary: dev}\n"})
    store = store_of(root)
    idle = schedulers(root, clock=at("02:29:00"))
    idle.wait_started(store)
    wait_for(lambda: "no pipeline is installed" in idle.output(), what="the scheduler to say nothing is installed")
    assert "conveyor pipeline install NAME" in idle.output()
    assert idle.stop() == 0

    installed = conveyor(root, "pipeline", "install", "nightly", env={"CONVEYOR_CLOCK": INSTALLED})
    assert installed.code == 0, installed.output
    # installing runs nothing by itself: without a scheduler, install and list say so
    assert "No scheduler is running" in " ".join(installed.stdout.split())
    assert "No scheduler is running" in " ".join(conveyor(root, "pipeline", "list").stdout.split())
    scheduler = schedulers(root, clock=at("02:29:58"))
    wait_for(lambda: "pipeline nightly (" in scheduler.output(), what="the scheduler to list its pipelines")
    assert "No scheduler is running" not in conveyor(root, "pipeline", "list").stdout
    assert "pipeline nightly (nightly at 02:30 UTC): next run 2026-06-15 02:30:00 UTC" in scheduler.output()
    assert "no pipeline is installed" not in scheduler.output()
    slot = finished_slot(store, "nightly")
    assert slot.status == "succeeded"
    wait_for(lambda: f"pipeline nightly run {slot.run_id} succeeded in " in scheduler.output(), what="the outcome")
    assert scheduler.stop() == 0
