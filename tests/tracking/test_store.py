"""Tests of the tracking store against real SQLite files and the real PostgreSQL service."""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from testkit.services import pg_database as fresh_pg_database

from conveyor.config.secrets import mask_dsn, scrub_dsn
from conveyor.errors import UserError
from conveyor.tracking.backends import backend_for
from conveyor.tracking.liveness import pid_alive
from conveyor.tracking.models import EventRow, FinishedEvent, RunRow
from conveyor.tracking.store import (
    Migration,
    TrackingStore,
    TrackingStoreError,
    default_dsn,
    load_migrations,
    migrate,
    new_run_id,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# acquires a lock and exits (or waits for stdin to close) without ever releasing it
LOCK_SCRIPT = """
import sys
from conveyor.tracking.store import TrackingStore
dsn, schema, name, holder, mode = sys.argv[1:6]
store = TrackingStore.open(dsn, schema=schema)
print("acquired" if store.acquire_lock(name, holder, ttl_s=300) else "refused", flush=True)
if mode == "wait":
    sys.stdin.read()
"""

WRITER_SCRIPT = """
import sys
from conveyor.tracking.store import TrackingStore
dsn, schema, run_id, count = sys.argv[1:5]
store = TrackingStore.open(dsn, schema=schema)
for i in range(int(count)):
    event = store.start_event(run_id, f"rel_{i}", "load")
    store.finish_event(event, "succeeded", rows=i)
print("done", flush=True)
"""


@dataclass(frozen=True)
class Target:
    """Where a test's store lives: a DSN plus, for PostgreSQL, a schema of its own."""

    dsn: str
    schema: str
    dialect: str

    def open(self) -> TrackingStore:
        return TrackingStore.open(self.dsn, schema=self.schema)

    def execute(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run raw SQL next to the store, as another tool or an older/newer conveyor would."""
        if self.dialect == "sqlite":
            with sqlite3.connect(self.dsn.removeprefix("sqlite:///")) as conn:
                return conn.execute(statement, params).fetchall()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            cursor = conn.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    def run_python(self, script: str, *args: str, **popen: object) -> subprocess.Popen[str]:
        command = [sys.executable, "-c", script, self.dsn, self.schema, *args]
        return subprocess.Popen(command, cwd=REPO_ROOT, text=True, **popen)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh database for this module, dropped afterwards."""
    with fresh_pg_database("conveyor_test_tracking") as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """One store location per test, on each backend (a schema of its own on PostgreSQL)."""
    if request.param == "sqlite":
        return Target(f"sqlite:///{tmp_path / 'tracking.db'}", "conveyor", "sqlite")
    database = request.getfixturevalue("pg_database")
    return Target(database, f"t_{secrets.token_hex(6)}", "postgres")


@pytest.fixture
def store(target: Target) -> Iterator[TrackingStore]:
    opened = target.open()
    yield opened
    opened.close()


# -- migrations ---------------------------------------------------------------------------


def test_migration_files_load_for_both_dialects() -> None:
    sqlite_migrations = load_migrations("sqlite")
    postgres_migrations = load_migrations("postgres")
    versions = [m.version for m in sqlite_migrations]
    assert versions == list(range(1, len(versions) + 1))  # 0001, 0002, ... without gaps
    assert versions == [m.version for m in postgres_migrations]
    assert [m.name for m in sqlite_migrations] == [m.name for m in postgres_migrations]
    assert all(m.statements() for m in sqlite_migrations + postgres_migrations)
    # 0002 differs only in how the autoincrement key is spelled
    assert "AUTOINCREMENT" in sqlite_migrations[1].sql
    assert "IDENTITY" in postgres_migrations[1].sql


def test_statement_splitting_ignores_semicolons_in_comments_and_strings() -> None:
    migration = Migration(1, "x", "-- a comment; with a semicolon\nCREATE TABLE t (a TEXT DEFAULT 'x;y');\n-- tail\n")
    assert migration.statements() == ["-- a comment; with a semicolon\nCREATE TABLE t (a TEXT DEFAULT 'x;y');"]
    with pytest.raises(ValueError, match="final ';'"):
        Migration(2, "y", "CREATE TABLE t (a TEXT)").statements()


def test_migrations_applied_once_and_recorded(target: Target) -> None:
    expected = {m.version: m.name for m in load_migrations(target.dialect)}
    with target.open() as first:
        assert first.schema_versions() == expected
        run_id = first.start_run("run", project="p")
    with target.open() as second:
        assert second.schema_versions() == expected
        assert second.get_run(run_id).run_id == run_id
    rows = target.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
    assert [(version, name) for version, name, _ in rows] == sorted(expected.items())
    assert all(datetime.fromisoformat(str(applied)).tzinfo is not None for _, _, applied in rows)


def test_reopening_applies_nothing(target: Target) -> None:
    target.open().close()
    backend = backend_for(target.dsn, target.schema)
    backend.ensure_connected()
    try:
        assert migrate(backend, load_migrations(target.dialect), "x") == []
    finally:
        backend.close()


def test_store_newer_than_code_is_refused(target: Target) -> None:
    target.open().close()
    target.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        (9999, "from_the_future", "2099-01-01T00:00:00.000000+00:00"),
    )
    with pytest.raises(UserError, match=r"schema version 9999.*newer.*Upgrade conveyor"):
        target.open()


def test_failed_migration_rolls_back_alone(target: Target) -> None:
    backend = backend_for(target.dsn, target.schema)
    backend.ensure_connected()
    good = Migration(1, "good", "CREATE TABLE good_t (x INTEGER);")
    bad = Migration(2, "bad", "CREATE TABLE half_t (x INTEGER);\nINSERT INTO no_such_table VALUES (1);")
    try:
        with pytest.raises(backend.errors):
            migrate(backend, [good, bad], "x")
        assert backend.table_exists("good_t")
        assert not backend.table_exists("half_t")
        assert migrate(backend, [good], "x") == []
    finally:
        backend.close()


def test_concurrent_first_open_migrates_once(target: Target) -> None:
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def open_store() -> None:
        barrier.wait()
        try:
            target.open().close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(target.execute("SELECT version FROM schema_migrations")) == len(load_migrations(target.dialect))


# -- runs and events ----------------------------------------------------------------------


def test_run_lifecycle(store: TrackingStore) -> None:
    run_id = store.start_run("run", project="shop", environment="prod", pipeline="nightly", selection="+orders")
    run = store.get_run(run_id)
    assert isinstance(run, RunRow)
    assert (run.command, run.project, run.environment, run.pipeline, run.selection) == (
        "run", "shop", "prod", "nightly", "+orders",
    )  # fmt: skip
    assert run.status == "running" and run.finished_at is None and run.duration_s is None
    assert run.started_at.tzinfo is not None and run.pid == os.getpid() and run.host

    store.finish_run(run_id, "failed", error="boom", summary={"failed": 1, "when": datetime(2026, 1, 1, tzinfo=UTC)})
    run = store.get_run(run_id)
    assert run.status == "failed" and run.error == "boom"
    assert run.summary == {"failed": 1, "when": "2026-01-01 00:00:00+00:00"}
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert run.duration_s is not None and run.duration_s >= 0


def test_finish_run_rejects_bad_status_and_unknown_run(store: TrackingStore) -> None:
    with pytest.raises(ValueError, match="final run status"):
        store.finish_run("x", "running")
    with pytest.raises(TrackingStoreError, match="no run"):
        store.finish_run("nope", "succeeded")


def test_run_ids_are_sortable_and_well_formed() -> None:
    early = new_run_id(datetime(2026, 11, 21, 5, 59, 40, tzinfo=UTC))
    late = new_run_id(datetime(2026, 11, 21, 6, 0, 0, tzinfo=UTC))
    assert re.fullmatch(r"20261121T055940Z-[0-9a-f]{6}", early)
    assert early < late


def test_event_lifecycle(store: TrackingStore) -> None:
    run_id = store.start_run("load", project="p")
    loaded = store.start_event(run_id, "raw.orders", "load", detail={"mode": "merge"})
    store.finish_event(loaded, "succeeded", rows=10, bytes=2048, detail={"batches": 2})
    built = store.start_event(run_id, "mart.orders", "build")
    store.finish_event(built, "failed", error="syntax error")
    now = datetime.now(UTC)
    skipped = store.record_event(
        run_id, "mart.customers", "build", "skipped", started_at=now, finished_at=now + timedelta(seconds=1.5)
    )
    events = store.run_events(run_id)
    assert [e.id for e in events] == [loaded, built, skipped]
    assert all(isinstance(e, EventRow) for e in events)
    first, second, third = events
    assert (first.status, first.rows, first.bytes) == ("succeeded", 10, 2048)
    assert first.detail == {"mode": "merge", "batches": 2}
    assert first.finished_at is not None and first.duration_s is not None
    assert (second.status, second.error, second.rows) == ("failed", "syntax error", None)
    assert third.status == "skipped" and third.duration_s == pytest.approx(1.5)
    assert third.started_at == now


def test_record_events_stores_each_event_as_record_event_does_in_one_transaction(store: TrackingStore) -> None:
    run_id = store.start_run("load", project="p")
    now = datetime.now(UTC)
    later = now + timedelta(seconds=0.25)
    events = [
        FinishedEvent("mart.a", "test", "succeeded", now, later, detail={"test": "not_null(x)"}, environment="dev"),
        FinishedEvent("mart.a", "test", "warned", now, later, error="3 failing rows", detail={"rows": [{"x": None}]}),
    ]
    ids = store.record_events(run_id, events)
    single = store.record_event(run_id, "mart.a", "test", "failed", started_at=now, finished_at=later, error="e")
    assert store.record_events(run_id, []) == []
    stored = store.run_events(run_id)
    assert [e.id for e in stored] == [*ids, single]
    first, second, third = stored
    assert (first.relation, first.step, first.status, first.environment) == ("mart.a", "test", "succeeded", "dev")
    assert first.detail == {"test": "not_null(x)"} and first.duration_s == pytest.approx(0.25)
    assert (second.status, second.error, second.detail) == ("warned", "3 failing rows", {"rows": [{"x": None}]})
    assert first.started_at == second.started_at == third.started_at == now
    # a bad event records none of them
    with pytest.raises(ValueError, match="event status"):
        store.record_events(run_id, [events[0], FinishedEvent("mart.b", "test", "done", now, later)])
    assert len(store.run_events(run_id)) == 3


def test_event_errors(store: TrackingStore) -> None:
    run_id = store.start_run("run", project="p")
    with pytest.raises(TrackingStoreError, match="no event"):
        store.finish_event(123456, "succeeded")
    with pytest.raises(ValueError, match="final event status"):
        store.finish_event(1, "done")
    with pytest.raises(ValueError, match="naive"):
        store.record_event(
            run_id, "r", "build", "skipped", started_at=datetime(2026, 1, 1), finished_at=datetime(2026, 1, 1)
        )
    with pytest.raises(TrackingStoreError):
        store.start_event("no-such-run", "r", "build")  # the foreign key holds on both backends


def test_get_run_by_prefix_and_last(store: TrackingStore) -> None:
    ids = ["20260101T000000Z-aaa111", "20260101T000000Z-aab222", "20260102T000000Z-ccc333"]
    for run_id in ids:
        store.start_run("run", project="p", run_id=run_id)
    assert store.get_run("20260102").run_id == ids[2]
    assert store.get_run("20260101T000000Z-aab").run_id == ids[1]
    assert store.get_run(ids[0]).run_id == ids[0]
    assert store.get_run("last").run_id == ids[2]
    assert store.get_run("latest").run_id == ids[2]


def test_get_run_ambiguous_and_missing(store: TrackingStore) -> None:
    with pytest.raises(UserError, match="no runs are recorded"):
        store.get_run("last")
    ids = ["20260101T000000Z-aaa111", "20260101T000000Z-aab222"]
    for run_id in ids:
        store.start_run("run", project="p", run_id=run_id)
    with pytest.raises(UserError, match="ambiguous") as ambiguous:
        store.get_run("20260101T000000Z-aa")
    assert all(run_id in str(ambiguous.value) for run_id in ids)
    with pytest.raises(UserError, match='no run id starts with "2025"') as missing:
        store.get_run("2025")
    assert ids[1] in str(missing.value)  # the hint lists recent runs
    with pytest.raises(UserError):
        store.get_run("  ")


def test_list_runs_filters_newest_first(store: TrackingStore) -> None:
    first = store.start_run("run", project="p", pipeline="nightly")
    second = store.start_run("extract", project="p")
    third = store.start_run("run", project="p", pipeline="nightly")
    store.finish_run(third, "succeeded")
    assert [r.run_id for r in store.list_runs()] == [third, second, first]
    assert [r.run_id for r in store.list_runs(pipeline="nightly")] == [third, first]
    assert [r.run_id for r in store.list_runs(status="running", command="run")] == [first]
    assert [r.run_id for r in store.list_runs(limit=1)] == [third]


# -- concurrency --------------------------------------------------------------------------


def _write_events(store: TrackingStore, run_id: str, count: int) -> None:
    for i in range(count):
        event = store.start_event(run_id, f"rel_{i}", "build")
        store.finish_event(event, "succeeded", rows=i)


def _in_threads(work: list[threading.Thread]) -> None:
    for thread in work:
        thread.start()
    for thread in work:
        thread.join()


def test_eight_threads_share_one_store(store: TrackingStore) -> None:
    run_id = store.start_run("run", project="p")
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            _write_events(store, run_id, 25)
        except BaseException as exc:
            failures.append(exc)

    _in_threads([threading.Thread(target=worker) for _ in range(8)])
    assert failures == []
    events = store.run_events(run_id)
    assert len(events) == 200 and {e.status for e in events} == {"succeeded"}


def test_eight_threads_with_own_stores(target: Target) -> None:
    with target.open() as main:
        run_id = main.start_run("run", project="p")
    failures: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            with target.open() as own:
                _write_events(own, run_id, 25)
                own.start_extract(run_id, "src", f"t_{number}", f"x_{number}")
        except BaseException as exc:
            failures.append(exc)

    _in_threads([threading.Thread(target=worker, args=(n,)) for n in range(8)])
    assert failures == []
    with target.open() as main:
        assert len(main.run_events(run_id)) == 200
        assert len(main.extract_state(source="src")) == 8


def test_several_processes_write_at_once(store: TrackingStore, target: Target) -> None:
    run_id = store.start_run("run", project="p")
    writers = [target.run_python(WRITER_SCRIPT, run_id, "30", stdout=subprocess.PIPE) for _ in range(3)]
    outputs = [writer.communicate(timeout=120)[0] for writer in writers]
    assert [w.returncode for w in writers] == [0, 0, 0]
    assert outputs == ["done\n"] * 3
    assert len(store.run_events(run_id)) == 90


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_opens_its_own_connection(store: TrackingStore) -> None:
    run_id = store.start_run("run", project="p")
    pid = os.fork()
    if pid == 0:  # the child: write through the inherited store, then leave without cleanup
        try:
            _write_events(store, run_id, 5)
        finally:
            os._exit(0 if len(store.run_events(run_id)) == 5 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    _write_events(store, run_id, 5)  # the parent's connection is unharmed
    assert len(store.run_events(run_id)) == 10


@pytest.mark.postgres
def test_postgres_connection_lost_is_reported_then_recovered(pg_database: str) -> None:
    target = Target(pg_database, f"t_{secrets.token_hex(6)}", "postgres")
    store = target.open()
    run_id = store.start_run("run", project="p")
    target.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    )
    with pytest.raises(TrackingStoreError, match="failed on the tracking store"):
        store.get_run(run_id)
    assert store.get_run(run_id).run_id == run_id
    store.close()


# -- extracts -----------------------------------------------------------------------------


def _wm(value: str) -> str:
    return json.dumps({"type": "timestamptz", "value": value})


def test_extract_success_advances_watermark_and_failure_does_not(store: TrackingStore) -> None:
    run_id = store.start_run("extract", project="p")
    assert store.watermark("shop", "orders") is None

    store.start_extract(run_id, "shop", "orders", "x1")
    state = store.extract_state("shop", "orders")[0]
    assert (state.status, state.last_extract_id, state.watermark) == ("running", "x1", None)
    store.finish_extract(
        "x1", "succeeded", rows=5, bytes=100, watermark_high=_wm("2026-01-01T00:00:00.123456+00:00"), manifest_path="m1"
    )
    assert store.watermark("shop", "orders") == _wm("2026-01-01T00:00:00.123456+00:00")

    store.start_extract(run_id, "shop", "orders", "x2")
    store.finish_extract(
        "x2", "failed", error="timeout", watermark_low="a", watermark_high=_wm("2027-01-01T00:00:00.000000+00:00")
    )
    assert store.watermark("shop", "orders") == _wm("2026-01-01T00:00:00.123456+00:00")
    state = store.extract_state("shop", "orders")[0]
    assert (state.status, state.error, state.last_extract_id) == ("failed", "timeout", "x2")
    assert state.last_success_extract_id == "x1" and state.last_success_at is not None

    failed = store.get_extract("x2")
    assert failed is not None and failed.watermark_high == _wm("2027-01-01T00:00:00.000000+00:00")
    assert [x.extract_id for x in store.list_extracts(source="shop", table="orders")] == ["x2", "x1"]
    assert [x.extract_id for x in store.list_extracts(run_id=run_id, limit=1)] == ["x2"]


def test_success_without_high_keeps_watermark_and_reset_clears_it(store: TrackingStore) -> None:
    run_id = store.start_run("extract", project="p")
    store.start_extract(run_id, "shop", "orders", "x1")
    store.finish_extract("x1", "succeeded", watermark_high=_wm("2026-01-01T00:00:00.000000+00:00"))
    store.start_extract(run_id, "shop", "orders", "x2")
    store.finish_extract("x2", "succeeded", rows=0)
    assert store.watermark("shop", "orders") == _wm("2026-01-01T00:00:00.000000+00:00")
    assert store.extract_state("shop")[0].last_success_extract_id == "x2"
    store.reset_watermark("shop", "orders")
    assert store.watermark("shop", "orders") is None
    store.reset_watermark("shop", "never_extracted")


def test_stale_attempt_does_not_overwrite_latest_status(store: TrackingStore) -> None:
    run_id = store.start_run("extract", project="p")
    store.start_extract(run_id, "shop", "orders", "old")
    store.start_extract(run_id, "shop", "orders", "new")
    store.finish_extract("old", "failed", error="late failure")
    state = store.extract_state("shop", "orders")[0]
    assert (state.status, state.last_extract_id, state.error) == ("running", "new", None)


def test_extract_state_filters_and_errors(store: TrackingStore) -> None:
    run_id = store.start_run("extract", project="p")
    for source, table in [("b", "t1"), ("a", "t2"), ("a", "t1")]:
        store.start_extract(run_id, source, table, f"{source}.{table}")
    assert [(s.source, s.table_name) for s in store.extract_state()] == [("a", "t1"), ("a", "t2"), ("b", "t1")]
    assert [s.table_name for s in store.extract_state(source="a")] == ["t1", "t2"]
    assert [s.source for s in store.extract_state(table="t1")] == ["a", "b"]
    with pytest.raises(TrackingStoreError, match="no extract"):
        store.finish_extract("missing", "succeeded")
    with pytest.raises(ValueError):
        store.finish_extract("a.t1", "running")


# -- locks --------------------------------------------------------------------------------


def test_lock_acquire_refresh_release(store: TrackingStore) -> None:
    assert store.acquire_lock("pipeline:nightly", "alice", ttl_s=60)
    assert not store.acquire_lock("pipeline:nightly", "bob", ttl_s=60)
    assert store.acquire_lock("pipeline:nightly", "alice", ttl_s=60)  # re-entrant for the same holder
    held = store.lock_holder("pipeline:nightly")
    assert held is not None and (held.holder, held.pid) == ("alice", os.getpid()) and not held.expired()
    assert store.refresh_lock("pipeline:nightly", "alice", ttl_s=120)
    assert not store.refresh_lock("pipeline:nightly", "bob")
    refreshed = store.lock_holder("pipeline:nightly")
    assert refreshed is not None and refreshed.expires_at > held.expires_at
    assert refreshed.acquired_at == held.acquired_at
    assert not store.release_lock("pipeline:nightly", "bob")
    assert store.release_lock("pipeline:nightly", "alice")
    assert store.lock_holder("pipeline:nightly") is None
    assert store.acquire_lock("pipeline:nightly", "bob")
    assert store.release_lock("pipeline:nightly", "anyone", force=True)


def test_expired_lock_is_taken_over(store: TrackingStore) -> None:
    assert store.acquire_lock("l", "alice", ttl_s=0.2)
    assert not store.acquire_lock("l", "bob", ttl_s=60)
    time.sleep(0.3)
    assert store.acquire_lock("l", "bob", ttl_s=60)
    assert not store.refresh_lock("l", "alice")


def test_lock_of_dead_process_is_taken_over(store: TrackingStore, target: Target) -> None:
    child = target.run_python(LOCK_SCRIPT, "pipeline:nightly", "child", "exit", stdout=subprocess.PIPE)
    output, _ = child.communicate(timeout=60)
    assert output.strip() == "acquired" and child.returncode == 0
    held = store.lock_holder("pipeline:nightly")
    assert held is not None and held.pid == child.pid and not held.expired()
    assert store.acquire_lock("pipeline:nightly", "me", ttl_s=60)
    taken = store.lock_holder("pipeline:nightly")
    assert taken is not None and (taken.holder, taken.pid) == ("me", os.getpid())


def test_lock_refused_while_holder_alive(store: TrackingStore, target: Target) -> None:
    child = target.run_python(
        LOCK_SCRIPT, "pipeline:nightly", "child", "wait", stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "acquired"
        assert not store.acquire_lock("pipeline:nightly", "me", ttl_s=60)
        assert not store.release_lock("pipeline:nightly", "child")  # same holder name, other process
    finally:
        child.communicate(input="", timeout=60)
    assert store.acquire_lock("pipeline:nightly", "me", ttl_s=60)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see zombies")
def test_zombie_holder_counts_as_dead() -> None:
    child = subprocess.Popen(["sleep", "0"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not pid_alive(child.pid)
    finally:
        child.wait()
    assert not pid_alive(child.pid)
    assert pid_alive(os.getpid())


# -- dsn handling and errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://user:s3cret@db.example:5432/wh", "postgresql://user:***@db.example:5432/wh"),
        ("postgres://user:p%40ss@host/db?sslmode=require", "postgres://user:***@host/db?sslmode=require"),
        ("postgresql://user:p@ss@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user@host/db?password=s3cret&x=1", "postgresql://user@host/db?password=***&x=1"),
        ("postgresql://host/db?sslpassword=k3y", "postgresql://host/db?sslpassword=***"),
        ("host=db user=u password=s3cret dbname=wh", "host=db user=u password=*** dbname=wh"),
        ("host=db password='a b c' dbname=wh", "host=db password=*** dbname=wh"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("/tmp/a:b@c/tracking.db", "/tmp/a:b@c/tracking.db"),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


@pytest.mark.postgres
def test_unreachable_postgres_never_shows_the_password() -> None:
    dsn = "postgresql://someone:Sup3rS3cret@127.0.0.1:1/db?connect_timeout=5"
    with pytest.raises(TrackingStoreError) as caught:
        TrackingStore.open(dsn)
    rendered = "".join(traceback.format_exception(caught.value))
    assert "Sup3rS3cret" not in rendered
    assert "someone:***@127.0.0.1:1" in str(caught.value)


@pytest.mark.parametrize(
    ("dsn", "password"),
    [
        ("postgresql://u:p%40ss@h/db", "p@ss"),
        ("postgresql://u@h/db?password=s3cret&sslmode=require", "s3cret"),
        ("host=h password='a b' dbname=d", "a b"),
    ],
)
def test_driver_messages_are_scrubbed(dsn: str, password: str) -> None:
    assert password not in scrub_dsn(f"driver said: {password} is wrong", dsn)
    assert scrub_dsn(f"driver said: {password} is wrong", dsn) == "driver said: *** is wrong"


def test_sqlite_dsn_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for dsn, path in [
        ("sqlite:///rel/dir/a.db", tmp_path / "rel/dir/a.db"),
        (f"sqlite:///{tmp_path}/abs.db", tmp_path / "abs.db"),
        (str(tmp_path / "plain.db"), tmp_path / "plain.db"),
        ("plain_relative.db", tmp_path / "plain_relative.db"),
        (default_dsn(tmp_path / "proj"), tmp_path / "proj/.conveyor/tracking.db"),
    ]:
        with TrackingStore.open(dsn) as opened:
            opened.start_run("run", project="p")
        assert path.is_file(), dsn
    wal_mode = sqlite3.connect(tmp_path / "plain.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert wal_mode == "wal"
    with TrackingStore.open("sqlite:///:memory:") as memory:
        assert memory.get_run(memory.start_run("run", project="p")).project == "p"


@pytest.mark.parametrize(
    ("dsn", "schema", "message"),
    [
        ("mysql://u:pw@h/db", "conveyor", "unsupported tracking store"),
        ("", "conveyor", "empty"),
        ("sqlite:relative.db", "conveyor", "cannot read"),
        ("postgresql://u@h/db", "bad-name; drop", "schema name"),
    ],
)
def test_bad_locations_are_user_errors(dsn: str, schema: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        TrackingStore.open(dsn, schema=schema)
    assert "pw@" not in str(caught.value)


def test_closed_store_refuses_calls(target: Target) -> None:
    opened = target.open()
    assert opened.dialect == target.dialect and "TrackingStore(" in repr(opened)
    opened.close()
    with pytest.raises(TrackingStoreError, match="closed"):
        opened.list_runs()


def test_extract_rows_from_before_0004_stay_readable(target: Target) -> None:
    """0004 keys extract rows by relation and adds upstream_table; older rows keep NULL there."""
    backend = backend_for(target.dsn, target.schema)
    backend.ensure_connected()
    try:
        migrate(backend, [m for m in load_migrations(target.dialect) if m.version < 4], "x")
    finally:
        backend.close()
    target.execute(
        "INSERT INTO runs (run_id, command, project, status, started_at, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("r0", "extract", "p", "succeeded", "2026-01-01T00:00:00.000000+00:00", "h", 1),
    )
    target.execute(
        "INSERT INTO extracts (extract_id, run_id, source, table_name, status, started_at) VALUES (?, ?, ?, ?, ?, ?)",
        ("x0", "r0", "shop", "main.rental", "succeeded", "2026-01-01T00:00:00.000000+00:00"),
    )
    target.execute(
        "INSERT INTO extract_state (source, table_name, status, last_extract_id, watermark) VALUES (?, ?, ?, ?, ?)",
        ("shop", "main.rental", "succeeded", "x0", _wm("2026-01-01T00:00:00.000000+00:00")),
    )
    store = target.open()
    try:
        (legacy,) = store.extract_state("shop")
        assert (legacy.table_name, legacy.upstream_table) == ("main.rental", None)
        assert store.get_extract("x0").upstream_table is None  # type: ignore[union-attr]
        run_id = store.start_run("extract", project="p")
        for relation in ("shop.rental", "shop.rental_recent"):
            store.start_extract(run_id, "shop", relation, f"x_{relation}", upstream_table="main.rental")
        found = {s.table_name: s.upstream_table for s in store.extract_state("shop")}
        assert found == {"main.rental": None, "shop.rental": "main.rental", "shop.rental_recent": "main.rental"}
        assert store.get_extract("x_shop.rental").upstream_table == "main.rental"  # type: ignore[union-attr]
    finally:
        store.close()
