"""``conveyor pipeline run``: failures, retries, one extract for both environments, runtime settings."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.pipeline import runner

from .conftest import Hooks, Mailbox, body_text, conveyor, free_port

# binds (validate and the preflight pass it), then fails on the first row: a step that fails as it runs
BROKEN_TOTALS = """\
SELECT c.id AS customer_id,
       CASE WHEN c.id > 0 THEN error('no_such_column') ELSE c.name END AS name,
       coalesce(sum(o.amount), 0) AS total
FROM shop.customers AS c
LEFT JOIN shop.orders AS o ON o.customer_id = c.id
GROUP BY c.id, c.name
"""


def test_a_failing_step_pings_fail_notifies_the_error_and_exits_1(
    pipeline_project: Callable[..., Path],
    hooks: Hooks,
    mailbox: Mailbox,
    cli: Callable[..., Any],
) -> None:
    root = pipeline_project(
        {
            "nightly": f"""\
                schedule: nightly at 02:30 Europe/Berlin
                environments: {{primary: dev, secondary: dev2}}
                retries: 1
                deadman: ["{hooks.base}/ping/nightly"]
                notify:
                  - {{url: "{hooks.json_url("/fail-hook")}", on: [failure]}}
                  - {{url: "{hooks.json_url("/success-hook")}", on: [success]}}
                  - {{url: "{mailbox.url()}", on: [failure]}}
                """
        },
        designs={"mart/customer_totals.sql": BROKEN_TOTALS},
    )
    done = cli("-p", str(root), "pipeline", "run", "nightly")  # the console script, for its real exit code
    assert done.code == 1, done.stdout + done.stderr
    assert "mart.customer_totals" in done.stdout + done.stderr

    assert hooks.paths("/ping/") == ["/ping/nightly/start", "/ping/nightly/fail"]
    assert hooks.paths("/success-hook") == []
    (fail_ping,) = hooks.received("/ping/nightly/fail")
    (webhook,) = hooks.received("/fail-hook")
    (mail,) = mailbox.messages
    message = webhook.json()
    assert message["type"] == "failure"
    assert "nightly" in message["title"] and "failed" in message["title"]

    failed = conveyor(root, "runs", "--pipeline", "nightly", "--status", "failed", "--format", "json")
    assert failed.code == 0, failed.output
    (run,) = failed.json()
    assert run["status"] == "failed" and run["pipeline"] == "nightly"
    assert "no_such_column" in run["error"]
    for text in (fail_ping.text, message["message"], body_text(mail)):
        assert f"Run {run['run_id']} of pipeline nightly failed in " in " ".join(text.split())
        assert "Failed: mart.customer_totals." in text
        assert "First error: load into dev failed:" in text and "no_such_column" in text
        assert "Environments: dev, dev2." in text
        assert "Rows extracted: 12;" in text
    assert conveyor(root, "runs", "--pipeline", "nightly", "--status", "succeeded", "--format", "json").json() == []

    # retried once, then the run stopped: the secondary was never loaded
    steps = conveyor(root, "runs", "show", run["run_id"], "--format", "json").json()["summary"]["steps"]
    assert [(s["step"], s["environment"], s["ok"], s["attempts"]) for s in steps] == [
        ("extract", None, True, 1),
        ("load", "dev", False, 2),
    ]
    assert not (root / "warehouse2.duckdb").exists()


def test_the_secondary_loads_the_primarys_extracts_even_when_a_newer_one_lands(
    pipeline_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, digest: Callable[[Path], dict[str, str]]
) -> None:
    """Between the two loads, another process extracts new upstream rows; dev2 must not see them."""
    root = pipeline_project({"nightly": "schedule: manual\nenvironments: {primary: dev, secondary: dev2}\n"})
    original = runner.STEPS["load"]
    interleaved: list[str] = []

    def load(state: Any, environment: str | None) -> None:
        original(state, environment)
        if environment == "dev":
            with sqlite3.connect(root / "upstream.db") as con:
                con.execute("INSERT INTO orders VALUES (15, 2, 1000.0, '2024-05-01T00:00:00Z')")
            extracted = conveyor(root, "extract", "shop.orders")
            assert extracted.code == 0, extracted.output
            interleaved.append("extracted")

    monkeypatch.setitem(runner.STEPS, "load", load)
    done = conveyor(root, "pipeline", "run", "nightly", "--format", "json")
    assert done.code == 0, done.output
    assert interleaved == ["extracted"]
    assert digest(root / "warehouse.duckdb") == digest(root / "warehouse2.duckdb")

    # each event names the environment its step ran in; extracts belong to none
    events = conveyor(root, "runs", "show", done.json()["run_id"], "--format", "json").json()["events"]
    by_step = {(e["step"], e["environment"]) for e in events}
    assert {("extract", None), ("load", "dev"), ("load", "dev2"), ("publish", "dev"), ("publish", "dev2")} <= by_step
    shown = conveyor(root, "runs", "show", done.json()["run_id"])
    assert " env " in shown.stdout and "dev2" in shown.stdout
    listed = [line for line in conveyor(root, "runs").stdout.splitlines() if done.json()["run_id"] in line]
    assert " dev, dev2 " in listed[0], listed  # not only the primary
    tail = conveyor(root, "runs", "tail", done.json()["run_id"]).stdout  # says which environment each line is
    assert "load shop.orders (dev) " in tail and "load shop.orders (dev2) " in tail, tail
    # runs --env finds the run by its secondary environment too; the extract of its middle did not write dev2
    in_dev2 = [r["run_id"] for r in conveyor(root, "runs", "--env", "dev2", "--format", "json").json()]
    assert in_dev2 == [done.json()["run_id"]]

    # and the newer extract was really there: a plain load picks it up
    assert conveyor(root, "load", "--env", "dev2").code == 0
    assert digest(root / "warehouse.duckdb") != digest(root / "warehouse2.duckdb")


def test_selective_the_secondary_updates_from_the_primarys_extracts_even_when_a_newer_one_lands(
    pipeline_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, digest: Callable[[Path], dict[str, str]]
) -> None:
    root = pipeline_project(
        {"nightly": "schedule: manual\nsteps: selective\nenvironments: {primary: dev, secondary: dev2}\n"}
    )
    assert conveyor(root, "run", "--env", "dev").code == 0  # update changes a warehouse in place
    assert conveyor(root, "load", "--env", "dev2").code == 0
    original = runner.STEPS["update"]

    def update(state: Any, environment: str | None) -> None:
        original(state, environment)
        if environment == "dev":
            with sqlite3.connect(root / "upstream.db") as con:
                con.execute("INSERT INTO orders VALUES (15, 2, 1000.0, '2024-05-01T00:00:00Z')")
            assert conveyor(root, "extract", "shop.orders").code == 0

    monkeypatch.setitem(runner.STEPS, "update", update)
    done = conveyor(root, "pipeline", "run", "nightly")
    assert done.code == 0, done.output
    assert digest(root / "warehouse.duckdb") == digest(root / "warehouse2.duckdb")


def test_runtime_env_and_setup_run_before_the_start_ping(pipeline_project: Callable[..., Path], hooks: Hooks) -> None:
    root = pipeline_project(
        {
            "nightly": f"""\
                schedule: manual
                steps: [extract]
                environments: {{primary: dev}}
                setup: ['printf "%s" "$GREETING" > greeting.txt']
                runtime: {{jobs: 1, env: {{GREETING: "hello from the pipeline"}}}}
                deadman: {hooks.base}/ping
                """
        }
    )
    done = conveyor(root, "pipeline", "run", "nightly")
    assert done.code == 0, done.output
    assert (root / "greeting.txt").read_text() == "hello from the pipeline"
    assert hooks.paths() == ["/ping/start", "/ping"]


def test_a_failed_setup_fails_the_run_without_a_start_ping(pipeline_project: Callable[..., Path], hooks: Hooks) -> None:
    root = pipeline_project(
        {
            "nightly": f"""\
                schedule: manual
                environments: {{primary: dev}}
                setup: ["echo refreshing; echo credentials expired >&2; exit 3"]
                deadman: {hooks.base}/ping
                notify: [{{url: "{hooks.json_url("/hook")}"}}]
                """
        }
    )
    done = conveyor(root, "pipeline", "run", "nightly", "--format", "json")
    assert done.code == 1
    assert hooks.paths("/ping") == ["/ping/fail"]
    assert "exited with 3: credentials expired" in hooks.received("/hook")[0].json()["message"]


def test_undeliverable_pings_and_notifications_never_fail_the_run(
    pipeline_project: Callable[..., Path], hooks: Hooks
) -> None:
    hooks.status["/down"] = 500
    hooks.status["/down/start"] = 503
    closed = free_port()
    root = pipeline_project(
        {
            "nightly": f"""\
                schedule: manual
                steps: [extract]
                environments: {{primary: dev}}
                deadman: ["{hooks.base}/down", "http://127.0.0.1:{closed}/nobody", "${{UNSET_DEADMAN_URL}}"]
                notify: [{{url: "json://127.0.0.1:{closed}/nobody", on: [success]}}]
                """
        }
    )
    done = conveyor(root, "pipeline", "run", "nightly", env={"UNSET_DEADMAN_URL": None})
    assert done.code == 0, done.output
    assert "UNSET_DEADMAN_URL" in done.output  # said so
    # each failing ping was retried briefly (3 attempts)
    assert hooks.paths() == ["/down/start"] * 3 + ["/down"] * 3
