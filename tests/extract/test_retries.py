"""Retries: a lost connection is retried from an empty folder; other errors fail at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pyarrow.compute as pc
import pymysql
import pytest

from .conftest import MY_ADMIN, Recorder, columns, extract, lake, manifest_table, result_of, write_project

ROWS = 100_000


class Terminator(threading.Thread):
    """Kills the server session streaming the table, ``times`` times (None: every time).

    PostgreSQL: while the COPY is active (ADBC receives it in batches of megabytes, so the
    server is done by the time a part file appears). MariaDB: once a part file appeared in
    ``table_dir``, so the kill lands in the middle of connectorx's stream.
    """

    def __init__(self, engine: str, dsn: str, table: str, table_dir: Path, times: int | None = 1):
        super().__init__(daemon=True)
        self.engine, self.dsn, self.table, self.table_dir, self.times = engine, dsn, table, table_dir, times
        self.killed: list[str] = []
        self.sessions: set[int] = set()
        self.stop = threading.Event()

    def streaming(self) -> bool:
        if self.engine == "postgres":
            return True
        return self.table_dir.is_dir() and any(self.table_dir.glob("*/part-*.parquet"))

    def run(self) -> None:
        if self.engine == "postgres":
            conn = psycopg.connect(self.dsn, autocommit=True)
            find = (
                "SELECT pid, query FROM pg_stat_activity WHERE application_name = 'conveyor' "
                f"AND state = 'active' AND query LIKE 'COPY (SELECT %%{self.table}%%' AND pid <> pg_backend_pid()"
            )
        else:
            conn = pymysql.connect(**MY_ADMIN, autocommit=True)
            find = (
                "SELECT ID, INFO FROM information_schema.PROCESSLIST "
                f"WHERE INFO LIKE 'SELECT %%{self.table}%%' AND ID <> CONNECTION_ID()"
            )
        try:
            with conn.cursor() as cur:
                while not self.stop.is_set() and (self.times is None or len(self.killed) < self.times):
                    if not self.streaming():
                        time.sleep(0.001)
                        continue
                    cur.execute(find)
                    for session, query in cur.fetchall():
                        if session in self.sessions:
                            continue  # terminated already, not gone yet
                        self.sessions.add(session)
                        if self.engine == "postgres":
                            cur.execute("SELECT pg_terminate_backend(%s)", (session,))
                        else:
                            cur.execute(f"KILL {int(session)}")
                        self.killed.append(query)
                    time.sleep(0.002)
        finally:
            conn.close()


def big_project(tmp_path: Path, engine: str, schema: str, **settings) -> Path:
    design = {
        "source_table": f"{schema}.big",
        "columns": columns(("id", "integer"), ("v", "text")),
        "extract": {"partitions": 1},
    }
    return write_project(tmp_path / "p", engine, designs={"big": design}, settings=settings)


def run_with(terminator: Terminator, root: Path, recorder: Recorder):
    terminator.start()
    try:
        return extract(root, reporter=recorder)
    finally:
        terminator.stop.set()
        terminator.join(10)


def assert_one_complete_extract(root: Path, lake_table: str, rows: int = ROWS) -> None:
    manifest = lake(root).latest("up", lake_table)
    assert manifest is not None and manifest.rows == rows
    ids = manifest_table(manifest).column("id")
    assert pc.count_distinct(ids).as_py() == rows and pc.max(ids).as_py() == rows
    on_disk = sorted(p.name for p in manifest.folder.iterdir())
    assert on_disk == sorted([*(f.path for f in manifest.files), "manifest.json"]), "leftovers of the failed attempt"


@pytest.mark.postgres
def test_postgres_lost_connection_is_retried(tmp_path: Path, pg, pg_dsn: str, monkeypatch) -> None:
    monkeypatch.setenv("UP_DSN", pg_dsn)
    pg.execute(
        f"CREATE TABLE big (id int, v text);INSERT INTO big SELECT g, repeat('x', 50) FROM generate_series(1, {ROWS}) g"
    )
    root = big_project(tmp_path, "postgres", "public")
    terminator, recorder = Terminator("postgres", pg_dsn, "big", root / "lake/data/up/up.big"), Recorder()
    outcome = run_with(terminator, root, recorder)
    assert len(terminator.killed) == 1, "the read was never caught in the act"
    assert outcome.ok, outcome.extract
    retries = [text for level, text in recorder.messages if "retrying up.big" in text]
    assert len(retries) == 1 and "terminating connection" in retries[0]
    assert_one_complete_extract(root, "up.big")


@pytest.mark.postgres
def test_postgres_lost_connection_every_time_gives_up_after_the_attempts(
    tmp_path: Path, pg, pg_dsn: str, monkeypatch
) -> None:
    monkeypatch.setenv("UP_DSN", pg_dsn)
    pg.execute(
        f"CREATE TABLE big (id int, v text);INSERT INTO big SELECT g, repeat('x', 50) FROM generate_series(1, {ROWS}) g"
    )
    root = big_project(tmp_path, "postgres", "public")
    terminator, recorder = (
        Terminator("postgres", pg_dsn, "big", root / "lake/data/up/up.big", times=None),
        Recorder(),
    )
    outcome = run_with(terminator, root, recorder)
    assert not outcome.ok
    assert len(terminator.killed) == 3  # attempts: 3
    assert len([t for _, t in recorder.messages if "retrying up.big" in t]) == 2
    assert "terminating connection" in result_of(outcome, "up.big").error
    assert lake(root).latest("up", "up.big") is None
    assert not [p for p in (root / "lake/data/up/up.big").iterdir() if p.is_dir()]


@pytest.mark.postgres
def test_missing_table_fails_at_once_without_retries(tmp_path: Path, pg_dsn: str, monkeypatch) -> None:
    monkeypatch.setenv("UP_DSN", pg_dsn)
    root = big_project(tmp_path, "postgres", "public", defaults={"retry": {"initial_delay": 2, "max_delay": 2}})
    recorder = Recorder()
    outcome = extract(root, reporter=recorder)
    result = result_of(outcome, "up.big")
    assert result.status == "failed" and 'table "public.big" does not exist in source "up"' in result.error
    assert result.seconds < 1.5, "a retry waited"
    assert not [t for _, t in recorder.messages if "retrying" in t]


@pytest.mark.mysql
def test_mariadb_lost_connection_is_retried(tmp_path: Path, my, my_db: str, my_dsn: str, monkeypatch) -> None:
    monkeypatch.setenv("UP_DSN", my_dsn)
    my("CREATE TABLE big (id int PRIMARY KEY, v varchar(60))")
    my(f"INSERT INTO big SELECT seq, REPEAT('x', 50) FROM seq_1_to_{3 * ROWS}")
    # a small budget keeps the relay's read-ahead (an eighth of a read's share) well under the
    # table's 18 MB, so the server is still sending when the first part appears (at 6 MB, a
    # quiet machine sometimes read it all before the first part was written)
    root = big_project(tmp_path, "mysql", my_db, defaults={"memory_budget_mib": 170})
    terminator, recorder = Terminator("mysql", my_dsn, "big", root / "lake/data/up/up.big"), Recorder()
    outcome = run_with(terminator, root, recorder)
    assert len(terminator.killed) == 1, "the read was never caught in the act"
    assert outcome.ok, result_of(outcome, "up.big").error
    assert_one_complete_extract(root, "up.big", 3 * ROWS)
