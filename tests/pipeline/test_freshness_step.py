"""A pipeline's ``freshness`` step: an error-level stale source fails the run and alerts; a warning is recorded."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import Hooks, conveyor

# the newest event is from March 2026: days old by any clock this test runs on
EVENTS_DESIGN = """\
name: shop.events
columns:
  - {{name: id, type: bigint, not_null: true}}
  - {{name: happened_at, type: timestamptz, not_null: true}}
constraints: {{primary_key: [id]}}
extract:
  incremental: {{cursor: happened_at}}
freshness: {{warn_after: "{warn}", error_after: "{error}"}}
"""


def events_project(pipeline_project: Callable[..., Path], hooks: Hooks, warn: str, error: str) -> Path:
    root = pipeline_project(
        {
            "gated": f"""\
                schedule: manual
                environments: {{primary: dev}}
                selection: [shop]
                steps: [extract, freshness, load]
                deadman: ["{hooks.base}/ping/gated"]
                notify:
                  - {{url: "{hooks.json_url("/fail-hook")}", on: [failure]}}
                  - {{url: "{hooks.json_url("/success-hook")}", on: [success]}}
                """
        },
        designs={"shop/events.yaml": EVENTS_DESIGN.format(warn=warn, error=error)},
    )
    with sqlite3.connect(root / "upstream.db") as con:
        con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TIMESTAMPTZ NOT NULL)")
        con.executemany(
            "INSERT INTO events VALUES (?, ?)",
            [(1, "2026-02-27T08:00:00+00:00"), (2, "2026-03-01T12:00:00.123456+00:00")],
        )
    return root


def freshness_events(root: Path, run_id: str) -> dict[str, dict[str, Any]]:
    events = conveyor(root, "runs", "show", run_id, "--format", "json").json()["events"]
    return {e["relation"]: e for e in events if e["step"] == "freshness"}


def test_a_source_past_its_error_after_fails_the_run_and_alerts(
    pipeline_project: Callable[..., Path], hooks: Hooks, cli: Callable[..., Any]
) -> None:
    root = events_project(pipeline_project, hooks, warn="12 hours", error="1 day")
    done = cli("-p", str(root), "pipeline", "run", "gated")  # the console script, for its real exit code
    assert done.code == 1, done.output
    assert "shop.events is " in done.output and "more than error_after 1 day" in done.output

    assert hooks.paths("/ping/") == ["/ping/gated/start", "/ping/gated/fail"]
    assert hooks.paths("/success-hook") == []
    (webhook,) = hooks.received("/fail-hook")
    message = webhook.json()
    assert message["type"] == "failure"
    text = " ".join(message["message"].split())
    assert "Failed: shop.events." in text
    assert "First error: 1 source table is older than error_after: shop.events is " in text

    (run,) = conveyor(root, "runs", "--pipeline", "gated", "--format", "json").json()
    assert run["status"] == "failed"
    steps = conveyor(root, "runs", "show", run["run_id"], "--format", "json").json()["summary"]["steps"]
    assert [(s["step"], s["ok"]) for s in steps] == [("extract", True), ("freshness", False)]
    assert not (root / "warehouse.duckdb").exists()  # the stale data was never loaded

    found = freshness_events(root, run["run_id"])
    assert set(found) == {"shop.customers", "shop.events", "shop.orders", "shop.products"}
    stale = found["shop.events"]
    assert stale["status"] == "failed" and "more than error_after 1 day" in stale["error"]
    detail = stale["detail"]
    assert (detail["status"], detail["measure"], detail["cursor"]) == ("error", "cursor", "happened_at")
    assert detail["newest"] == "2026-03-01T12:00:00.123456+00:00"
    assert (detail["warn_after"], detail["error_after"]) == ("12 hours", "1 day") and detail["age_s"] > 86400
    # tables without thresholds were just extracted: fresh
    assert {found[name]["status"] for name in ("shop.customers", "shop.orders", "shop.products")} == {"succeeded"}


def test_a_source_past_its_warn_after_is_recorded_and_the_run_goes_on(
    pipeline_project: Callable[..., Path], hooks: Hooks
) -> None:
    root = events_project(pipeline_project, hooks, warn="1 day", error="100000 days")
    done = conveyor(root, "pipeline", "run", "gated", "--format", "json")
    assert done.code == 0, done.output
    run_id = done.json()["run_id"]
    assert hooks.paths("/ping/") == ["/ping/gated/start", "/ping/gated"]
    assert len(hooks.received("/success-hook")) == 1 and hooks.paths("/fail-hook") == []
    assert (root / "warehouse.duckdb").exists()

    found = freshness_events(root, run_id)
    warned = found["shop.events"]
    assert warned["status"] == "warned"
    assert "more than warn_after 1 day" in warned["error"]
    assert warned["detail"]["status"] == "warn"
    shown = conveyor(root, "runs", "show", run_id)
    assert "warned" in shown.stdout
