"""A nightly pipeline run by the real scheduler at 02:30 Berlin time, on an ordinary and on DST days.

The scheduler is a subprocess; its clock starts at ``CONVEYOR_CLOCK`` (the documented test
hook). Pings and JSON webhooks go to a real HTTP server, e-mail to a real SMTP server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from conveyor.tracking.store import TrackingStore

from .conftest import Hooks, Mailbox, SchedulerProcess, body_text, conveyor, install, iso, wait_for

pytestmark = pytest.mark.slow

ROWS_EXTRACTED = 4 + 5 + 3  # customers, orders, products
# per environment: 12 source rows, 4 customer_totals, 3 top_customers (the view has no rows)
ROWS_LOADED = 2 * (ROWS_EXTRACTED + 4 + 3)


def nightly_yaml(hooks: Hooks, mailbox: Mailbox, extra: str = "") -> str:
    return f"""\
        description: Full ETL into dev and dev2 from one extract.
        schedule: nightly at 02:30 Europe/Berlin
        steps: full
        environments: {{primary: dev, secondary: dev2}}
        deadman: {hooks.base}/ping/nightly
        notify:
          - {{url: "{hooks.json_url("/hook")}", on: [success, failure]}}
          - url: "{mailbox.url()}"
            on: [success, failure]
        {extra}
        """


def lake_extracts(root: Path) -> dict[str, list[str]]:
    """Table folder -> committed extract ids in the lake."""
    found: dict[str, list[str]] = {}
    for table in sorted((root / "lake" / "data" / "shop").iterdir()):
        found[table.name] = sorted(d.name for d in table.iterdir() if (d / "manifest.json").is_file())
    return found


def test_nightly_runs_on_schedule_pings_notifies_and_loads_both_environments_from_one_extract(
    pipeline_project: Callable[..., Path],
    hooks: Hooks,
    mailbox: Mailbox,
    schedulers: Callable[..., SchedulerProcess],
    store_of: Callable[[Path], TrackingStore],
    digest: Callable[[Path], dict[str, str]],
) -> None:
    root = pipeline_project({"nightly": nightly_yaml(hooks, mailbox)})
    installed = conveyor(root, "pipeline", "install", "nightly", env={"CONVEYOR_CLOCK": "2026-06-15T02:00:00+02:00"})
    assert installed.code == 0, installed.output
    assert "next run" in installed.stdout

    store = store_of(root)
    slot = datetime.fromisoformat("2026-06-15T02:30:00+02:00")
    scheduler = schedulers(root, clock=datetime.fromisoformat("2026-06-15T02:29:58+02:00"))
    success = hooks.wait("/ping/nightly")[0]
    hooks.wait("/hook")
    mails = mailbox.wait()
    wait_for(lambda: [s for s in store.slots("nightly") if s.status != "running"], what="the slot to finish")

    # -- the run and its slot ------------------------------------------------------------
    runs = conveyor(root, "runs", "--pipeline", "nightly", "--format", "json").json()
    assert [r["status"] for r in runs] == ["succeeded"]
    run_id = runs[0]["run_id"]
    assert runs[0]["command"] == "pipeline" and runs[0]["pipeline"] == "nightly"
    slots = store.slots("nightly")
    assert [(iso(s.scheduled_at), s.status, s.run_id) for s in slots] == [(iso(slot), "succeeded", run_id)]

    # -- dead-man pings: /start, then success, each with a body ---------------------------
    assert hooks.paths("/ping/") == ["/ping/nightly/start", "/ping/nightly"]
    start = hooks.received("/ping/nightly/start")[0]
    assert start.at <= success.at
    for ping in (start, success):
        assert ping.content_type.startswith("text/plain")
        assert run_id in ping.text and "nightly" in ping.text
        assert "dev, dev2" in ping.text, ping.text
    assert "succeeded" in success.text
    assert f"Rows extracted: {ROWS_EXTRACTED:,}; rows loaded: {ROWS_LOADED:,}." in success.text

    # -- the JSON webhook and the e-mail ---------------------------------------------------
    (webhook,) = hooks.received("/hook")
    message = webhook.json()
    assert message["type"] == "success"
    assert "nightly" in message["title"] and "succeeded" in message["title"] and "dev, dev2" in message["title"]
    for text in (message["message"], body_text(mails[0])):
        assert f"Run {run_id} of pipeline nightly succeeded in " in text
        assert "Environments: dev, dev2." in text
        assert f"Rows extracted: {ROWS_EXTRACTED:,}; rows loaded: {ROWS_LOADED:,}." in text
    assert "nightly" in mails[0]["subject"] and "succeeded" in mails[0]["subject"]
    assert mailbox.envelopes == [("etl@example.com", ["ops@example.com"])]

    # -- one extract, both environments ----------------------------------------------------
    extracts = store.list_extracts(run_id=run_id)
    by_table = {e.table_name: e.extract_id for e in extracts if e.status == "succeeded"}
    assert len(extracts) == len(by_table) == 3
    assert lake_extracts(root) == {table: [extract_id] for table, extract_id in sorted(by_table.items())}
    loads: dict[str, list[list[str]]] = {}
    for event in store.run_events(run_id):
        if event.step == "load" and event.status == "succeeded":
            loads.setdefault(event.relation, []).append((event.detail or {})["extracts"])
    assert sorted(loads) == ["shop.customers", "shop.orders", "shop.products"]
    for chains in loads.values():
        assert len(chains) == 2 and chains[0] == chains[1]  # primary, then secondary
        assert chains[0][0] in by_table.values()
    primary, secondary = digest(root / "warehouse.duckdb"), digest(root / "warehouse2.duckdb")
    assert primary == secondary
    assert {"shop.customers", "shop.orders", "shop.products", "mart.customer_totals", "mart.report"} <= set(primary)

    # -- nothing else runs today; the scheduler stops cleanly ------------------------------
    assert scheduler.stop() == 0, scheduler.output()
    listed = conveyor(root, "pipeline", "list", "--format", "json").json()
    assert listed[0]["last_run"] == run_id and listed[0]["last_status"] == "succeeded"
    assert listed[0]["next_run"] == "2026-06-16T00:30:00+00:00"
    assert json.dumps(runs)  # JSON-ready


def test_nightly_on_dst_days_runs_after_the_spring_gap_and_once_on_the_fall_back_day(
    pipeline_project: Callable[..., Path],
    schedulers: Callable[..., SchedulerProcess],
    store_of: Callable[[Path], TrackingStore],
) -> None:
    """2026-03-29: 02:30 does not exist in Berlin, the run is at 03:30 CEST (01:30 UTC).
    2026-10-25: 02:30 happens twice (00:30 and 01:30 UTC); only the first runs.
    (Two projects, each with its scheduler, side by side.)"""
    definition = "schedule: nightly at 02:30 Europe/Berlin\nenvironments: {primary: dev}\n"
    spring, fall = pipeline_project({"nightly": definition}), pipeline_project({"nightly": definition})
    install(spring, "nightly", "2026-03-29T01:00:00+01:00")
    install(fall, "nightly", "2026-10-25T02:00:00+02:00")
    spring_store, fall_store = store_of(spring), store_of(fall)
    spring_scheduler = schedulers(spring, clock=datetime.fromisoformat("2026-03-29T03:29:58+02:00"))
    first = schedulers(fall, clock=datetime.fromisoformat("2026-10-25T02:29:58+02:00"))

    for store in (spring_store, fall_store):
        wait_for(lambda store=store: [s for s in store.slots("nightly") if s.status == "succeeded"], what="a run")  # type: ignore[misc]
    assert [iso(s.scheduled_at) for s in spring_store.slots("nightly")] == ["2026-03-29T01:30:00+00:00"]
    assert spring_scheduler.stop() == 0
    assert first.stop() == 0

    # the scheduler again, just before the second 02:30 (CET, 01:30 UTC): nothing runs, nothing is missed
    second = schedulers(fall, clock=datetime.fromisoformat("2026-10-25T02:29:58+01:00"))
    second.wait_clock_past(fall_store, datetime.fromisoformat("2026-10-25T02:30:03+01:00"))
    slots = fall_store.slots("nightly")
    assert [(iso(s.scheduled_at), s.status) for s in slots] == [("2026-10-25T00:30:00+00:00", "succeeded")]
    assert len(conveyor(fall, "runs", "--pipeline", "nightly", "--format", "json").json()) == 1
    assert second.stop() == 0
