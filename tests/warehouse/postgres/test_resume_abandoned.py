"""A `conveyor run` into PostgreSQL SIGKILLed mid-build: abandoned, its staging kept, and
`load --resume` finishes it to the same warehouse as an uninterrupted load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.tracking.store import TrackingStore, default_dsn

from .test_postgres import RELATIONS, schemas

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CONVEYOR = str(Path(sys.executable).parent / "conveyor")  # the console script beside this interpreter

Sql = Callable[..., list[tuple[Any, ...]]]

# sleeps for ten minutes in sessions that set conveyor.test_slow (through PGOPTIONS), else not
SLOW = {
    "mart/slow.yaml": "name: mart.slow\nkind: ctas\n",
    "mart/slow.sql": (
        "SELECT o.id, o.amount\nFROM shop.orders AS o\nWHERE (SELECT pg_sleep(CASE WHEN "
        "current_setting('conveyor.test_slow', true) = 'on' THEN 600 ELSE 0 END)::text) = ''\n"
    ),
}


def checksums(sql: Sql) -> dict[str, str]:
    """Relation -> md5 of its rows in a stable order."""
    return {
        name: sql(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {name} AS t")[0][0]
        for name in sorted({*RELATIONS, "mart.slow"})
    }


def building(store: TrackingStore, relation: str) -> str | None:
    for run in store.list_runs(command="run", status="running"):
        if any(e.relation == relation and e.status == "running" for e in store.run_events(run.run_id)):
            return run.run_id
    return None


def test_a_sigkilled_run_into_postgres_is_abandoned_and_its_kept_staging_resumed(
    pg_project: Callable[..., Path], sql: Sql, cli: Callable[..., Any]
) -> None:
    root = pg_project(designs=SLOW)
    # the killed run's query sleeps for ten minutes; the resume's does not. The warehouse's
    # sessions ask the server to end a statement whose client is gone, so the resume need not
    # wait for the killed one's
    slow = {**os.environ, "PGOPTIONS": "-c conveyor.test_slow=on"}
    store = TrackingStore.open(default_dsn(root))  # the project's store, created here first
    killed = subprocess.Popen([CONVEYOR, "-q", "run", "--env", "pg"], cwd=root, env=slow)
    try:
        deadline = time.monotonic() + 90
        while not (run_id := building(store, "mart.slow")):
            assert time.monotonic() < deadline and killed.poll() is None, "the run never built mart.slow"
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(30) == -signal.SIGKILL
    finally:
        killed.kill()
        killed.wait()
        store.close()
    assert {"mart$staging", "shop$staging"} <= schemas(sql)  # the kept build, marked with its run

    runs = json.loads(cli("runs", "--command", "run", "--format", "json", cwd=root).stdout)
    assert [(r["run_id"], r["status"]) for r in runs] == [(run_id, "abandoned")]

    resumed = cli("load", "--resume", "--env", "pg", "--format", "json", cwd=root, timeout=120)
    assert resumed.code == 0, resumed.stderr
    assert f"resumed the build of run {run_id} (abandoned)" in json.loads(resumed.stdout)["notes"]
    shown = json.loads(cli("runs", "show", "last", "--format", "json", cwd=root).stdout)
    rebuilt = {e["relation"] for e in shown["events"] if e["step"] in ("load", "build")}
    assert "mart.slow" in rebuilt and "shop.orders" not in rebuilt
    assert not {s for s in schemas(sql) if s.endswith("$staging")}
    after_resume = checksums(sql)

    assert cli("-q", "load", "--env", "pg", cwd=root, timeout=120).code == 0  # uninterrupted, same extracts
    assert checksums(sql) == after_resume
