"""Ctrl-C (SIGINT) and SIGTERM in the middle of a slow server statement.

A PostgreSQL-warehouse load whose transformation runs ``pg_sleep(60)``, and a PostgreSQL
extract whose condition sleeps on its first row, get the signal while the statement runs.
The process must end within 5 s with exit code 130 (SIGINT) or 143 (SIGTERM), leave no
statement of the test database running (``pg_stat_activity``), no staging schema and no
committed extract, record the run ``cancelled``, and a rerun must succeed.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from testkit.cli import run_cli

from conveyor import api
from tests.conftest import CONVEYOR, Background
from tests.extract.conftest import columns, lake, write_project

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]
ROWS = 1000
SLOW_SQL = "SELECT b.id FROM up.big AS b CROSS JOIN (SELECT pg_sleep(60)) AS s\n"
FAST_SQL = "SELECT b.id FROM up.big AS b\n"
UPSTREAM = (
    "CREATE TABLE big (id int PRIMARY KEY, v text);"
    f"INSERT INTO big SELECT g, 'r' || g FROM generate_series(1, {ROWS}) g"
)
SLOW_CONDITION = "CASE WHEN id = 1 THEN pg_sleep(60) IS NOT NULL ELSE true END"


def project(root: Path, *, condition: str | None = None) -> Path:
    """Source ``up`` and a PostgreSQL warehouse ``pg``, both the test's database; ``mart.slow`` sleeps."""
    design = {"source_table": "public.big", "columns": columns(("id", "integer"), ("v", "text"))}
    if condition:
        design["extract"] = {"condition": condition}
    settings = {
        "environments": {"pg": {"type": "postgres", "dsn": "${UP_DSN}"}},
        "default_environment": "pg",
        "defaults": {"jobs": 2},
    }
    write_project(root, "postgres", designs={"big": design}, settings=settings)
    (root / "schemas/mart").mkdir(parents=True, exist_ok=True)
    (root / "schemas/mart/slow.yaml").write_text("name: mart.slow\nkind: ctas\n", encoding="utf-8")
    (root / "schemas/mart/slow.sql").write_text(SLOW_SQL, encoding="utf-8")
    return root


def others(pg: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Every other session of the test database: (pid, state, query)."""
    return pg.execute(
        "SELECT pid, state, query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchall()


def wait_for_statement(pg: psycopg.Connection[Any], command: Background, like: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(state == "active" and like in query for _, state, query in others(pg)):
            return
        assert command.process.poll() is None, command.output
        time.sleep(0.02)
    raise AssertionError(f"no statement like {like!r} ran: {command.output}")


def interrupt(command: Background, signum: int) -> tuple[int, float]:
    """Send ``signum``; return the exit code and the seconds the process took to end."""
    sent = time.monotonic()
    command.process.send_signal(signum)
    try:
        code = command.finish(timeout=30)
    finally:
        if command.process.poll() is None:
            command.process.kill()
    return code, time.monotonic() - sent


def assert_nothing_left_running(pg: psycopg.Connection[Any]) -> None:
    """No statement of the test database runs; the sessions of the ended process are gone within a second."""
    assert not [s for s in others(pg) if s[1] == "active"], others(pg)
    deadline = time.monotonic() + 1
    while others(pg) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert others(pg) == [], "sessions of the cancelled process remain"


def last_run(root: Path, command: str) -> Any:
    store = api.open_tracking(api.open_project(root))
    try:
        run = store.list_runs(command=command, limit=1)[0]
        return run, store.run_events(run.run_id)
    finally:
        store.close()


def cli(root: Path, *args: str, dsn: str) -> Background:
    return Background([CONVEYOR, "-p", str(root), *args], cwd=root, env={"UP_DSN": dsn})


@pytest.mark.parametrize("signum", SIGNALS)
def test_load_with_a_slow_statement_is_cancelled(tmp_path: Path, pg_dsn: str, pg, signum: int) -> None:
    pg.execute(UPSTREAM)
    root = project(tmp_path / "p")
    extract = cli(root, "extract", dsn=pg_dsn)
    assert extract.finish(60) == 0, extract.output

    load = cli(root, "load", dsn=pg_dsn)
    wait_for_statement(pg, load, "pg_sleep(60)")
    code, seconds = interrupt(load, signum)
    assert code == 128 + signum, load.output
    assert seconds < 5, f"the load took {seconds:.1f} s to stop"
    assert "Traceback" not in load.output and "Cancelled" in load.output, load.output
    assert "conveyor runs show last" in load.output
    assert_nothing_left_running(pg)
    assert pg.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE '%$staging'").fetchall() == []
    assert pg.execute("SELECT nspname FROM pg_namespace WHERE nspname IN ('up', 'mart')").fetchall() == []
    run, events = last_run(root, "load")
    assert run.status == "cancelled" and signal.Signals(signum).name in (run.error or ""), run
    assert "running" not in {e.status for e in events}
    assert "cancelled" in {e.status for e in events if e.relation == "mart.slow"}

    (root / "schemas/mart/slow.sql").write_text(FAST_SQL, encoding="utf-8")
    rerun = cli(root, "load", dsn=pg_dsn)
    assert rerun.finish(60) == 0, rerun.output
    assert pg.execute("SELECT count(DISTINCT id) FROM mart.slow").fetchone() == (ROWS,)


@pytest.mark.parametrize("signum", SIGNALS)
def test_extract_with_a_slow_read_is_cancelled(tmp_path: Path, pg_dsn: str, pg, signum: int) -> None:
    pg.execute(UPSTREAM)
    root = project(tmp_path / "p", condition=SLOW_CONDITION)
    extract = cli(root, "extract", dsn=pg_dsn)
    wait_for_statement(pg, extract, "pg_sleep(60)")
    code, seconds = interrupt(extract, signum)
    assert code == 128 + signum, extract.output
    assert seconds < 5, f"the extract took {seconds:.1f} s to stop"
    assert "Traceback" not in extract.output, extract.output
    assert_nothing_left_running(pg)
    assert lake(root).latest("up", "up.big") is None, "a cancelled extract was committed"
    run, events = last_run(root, "extract")
    assert run.status == "cancelled", run
    assert [e.status for e in events if e.relation == "up.big"] == ["cancelled"]
    store = api.open_tracking(api.open_project(root))
    try:  # `extract status` agrees with `runs show`: cancelled, not failed
        [state] = store.extract_state("up", "up.big")
        assert state.status == "cancelled"
    finally:
        store.close()
    shown = run_cli("-p", str(root), "extract", "status", env={"COLUMNS": "80", "UP_DSN": pg_dsn})
    first = state.error.splitlines()[0]
    assert len(first) > 60 and first in shown.stdout, shown.output  # the error's first line, not cut at 60

    project(root)  # the same design without the slow condition
    rerun = cli(root, "extract", dsn=pg_dsn)
    assert rerun.finish(60) == 0, rerun.output
    manifest = lake(root).latest("up", "up.big")
    assert manifest is not None and manifest.rows == ROWS


def test_update_with_a_slow_statement_is_cancelled(tmp_path: Path, pg_dsn: str, pg) -> None:
    pg.execute(UPSTREAM)
    root = project(tmp_path / "p")
    (root / "schemas/mart/slow.sql").write_text(FAST_SQL, encoding="utf-8")
    for args in (("extract",), ("load",)):
        command = cli(root, *args, dsn=pg_dsn)
        assert command.finish(60) == 0, command.output
    (root / "schemas/mart/slow.sql").write_text(SLOW_SQL, encoding="utf-8")
    update = cli(root, "update", "mart.slow", dsn=pg_dsn)
    wait_for_statement(pg, update, "pg_sleep(60)")
    code, seconds = interrupt(update, signal.SIGTERM)
    assert code == 143 and seconds < 5, (seconds, update.output)
    assert_nothing_left_running(pg)
    assert pg.execute("SELECT count(DISTINCT id) FROM mart.slow").fetchone() == (ROWS,), "the update was not undone"
    run, _ = last_run(root, "update")
    assert run.status == "cancelled", run
