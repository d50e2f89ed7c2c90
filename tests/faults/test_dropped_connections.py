"""Dropped connections: the server ends one of a run's sessions in the middle of its work.

Each test kills a session of its own database (``pg_terminate_backend``, or MariaDB's
``KILL``), found by what it runs, at a moment made deterministic by a slow first row: the
extract's condition sleeps on the row with id 1, which is in the first partition, and with
one worker the partitions are read one after the other. So the snapshot holder and the
first partition's reader are always caught while the first partition reads, before the
others import the snapshot. The command runs as a real process; afterwards the lake (or the
warehouse) holds exactly the upstream rows: retried, or cleanly failed and then rerun.

``FAULT_TRIALS`` (default 2) repeats the PostgreSQL kills, for measuring.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.compute as pc
import pymysql
import pytest

from tests.conftest import CONVEYOR, Background
from tests.extract.conftest import MY_ADMIN, columns, deep_merge, lake, manifest_table, write_project

ROWS = 20_000
TRIALS = int(os.environ.get("FAULT_TRIALS", "2"))
PG_SLOW_FIRST_ROW = "CASE WHEN id = 1 THEN pg_sleep(1.5) IS NOT NULL ELSE true END"
MY_SLOW_FIRST_ROW = "CASE WHEN id = 1 THEN SLEEP(1.5) = 0 ELSE 1 END"

# the sessions of the test's database that the run uses, by what they do
READER = "query LIKE 'COPY (SELECT %%big%%' AND state = 'active'"
HOLDER = "query = 'SELECT pg_export_snapshot()' AND state = 'idle in transaction'"
WAREHOUSE_COPY = "query LIKE 'COPY \"up$staging\".\"big\"%%' AND state = 'active'"


class Killer(threading.Thread):
    """Ends, once, the first session of ``dsn``'s database that matches ``where``."""

    def __init__(self, dsn: str, where: str, engine: str = "postgres"):
        super().__init__(daemon=True)
        self.dsn, self.where, self.engine = dsn, where, engine
        self.killed: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        if self.engine == "postgres":
            conn: Any = psycopg.connect(self.dsn, autocommit=True)
            find = (
                "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
                f"AND application_name = 'conveyor' AND pid <> pg_backend_pid() AND {self.where}"
            )
        else:
            conn = pymysql.connect(**MY_ADMIN, autocommit=True)
            find = f"SELECT ID, INFO FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND {self.where}"
        try:
            with conn.cursor() as cur:
                while not self.stop.is_set() and not self.killed:
                    cur.execute(find)
                    for session, query in cur.fetchall()[:1]:
                        if self.engine == "postgres":
                            cur.execute("SELECT pg_terminate_backend(%s)", (session,))
                        else:
                            cur.execute(f"KILL {int(session)}")
                        self.killed.append(query)
                    time.sleep(0.002)
        finally:
            conn.close()


@contextmanager
def killing(dsn: str, where: str, engine: str = "postgres") -> Iterator[Killer]:
    killer = Killer(dsn, where, engine)
    killer.start()
    try:
        yield killer
    finally:
        killer.stop.set()
        killer.join(10)


def run(root: Path, *args: str, env: dict[str, str], timeout: float = 90) -> tuple[int, str]:
    command = Background([CONVEYOR, "-p", str(root), *args], cwd=root, env=env)
    try:
        return command.finish(timeout), command.output
    finally:
        if command.process.poll() is None:
            command.process.kill()


def extract_project(root: Path, engine: str, schema: str, slow: str, **settings: Any) -> Path:
    design = {
        "source_table": f"{schema}.big",
        "columns": columns(("id", "integer"), ("v", "text")),
        "extract": {"partitions": 4, "condition": slow, **({"split_by": "id"} if engine == "mysql" else {})},
    }
    base = {"defaults": {"jobs": 1, "retry": {"attempts": 3, "initial_delay": 0.05, "max_delay": 0.1}}}
    return write_project(root, engine, designs={"big": design}, settings=deep_merge(base, settings))


def assert_lake_holds_every_row(root: Path) -> None:
    manifest = lake(root).latest("up", "up.big")
    assert manifest is not None and manifest.rows == ROWS, "missing or duplicate rows"
    ids = manifest_table(manifest).column("id")
    assert pc.count_distinct(ids).as_py() == ROWS and pc.min(ids).as_py() == 1 and pc.max(ids).as_py() == ROWS
    on_disk = sorted(p.name for p in manifest.folder.iterdir())
    assert on_disk == sorted([*(f.path for f in manifest.files), "manifest.json"]), "leftovers of the failed attempt"


@pytest.fixture
def pg_big(pg: psycopg.Connection[Any]) -> None:
    pg.execute(
        "CREATE TABLE big (id int PRIMARY KEY, v text);"
        f"INSERT INTO big SELECT g, repeat('x', 50) || g FROM generate_series(1, {ROWS}) g"
    )


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("session", ["reader", "holder"])
def test_postgres_extract_is_retried_from_a_fresh_snapshot(
    tmp_path: Path, pg_dsn: str, pg_big: None, session: str
) -> None:
    where = READER if session == "reader" else HOLDER
    for trial in range(TRIALS):
        root = extract_project(tmp_path / f"p{trial}", "postgres", "public", PG_SLOW_FIRST_ROW)
        with killing(pg_dsn, where) as killer:
            code, output = run(root, "extract", env={"UP_DSN": pg_dsn})
        assert len(killer.killed) == 1, f"the {session} was never caught in the act"
        assert code == 0, output
        assert output.count("retrying up.big after a transient error") == 1, output
        if session == "holder":
            assert "lost the connection holding the exported snapshot" in output
        assert_lake_holds_every_row(root)


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_warehouse_copy_killed_fails_cleanly_and_the_rerun_is_exact(tmp_path: Path, pg_dsn: str, pg) -> None:
    pg.execute(
        "CREATE TABLE big (id int PRIMARY KEY, v text);"
        "INSERT INTO big SELECT g, repeat('x', 200) || g FROM generate_series(1, 300000) g"
    )
    design = {"source_table": "public.big", "columns": columns(("id", "integer"), ("v", "text"))}
    settings = {"environments": {"pg": {"type": "postgres", "dsn": "${UP_DSN}"}}, "default_environment": "pg"}
    root = write_project(tmp_path / "p", "postgres", designs={"big": design}, settings=settings)
    env = {"UP_DSN": pg_dsn}
    assert run(root, "extract", env=env)[0] == 0
    with killing(pg_dsn, WAREHOUSE_COPY) as killer:
        code, output = run(root, "load", env=env)
    assert len(killer.killed) == 1, "the COPY was never caught in the act"
    assert code == 1, output
    assert 'loading "up.big" failed in PostgreSQL' in output and "Not published" in output, output
    assert "Traceback" not in output and "error ignored" not in output, output
    schemas = {r[0] for r in pg.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'up%'")}
    assert schemas <= {"up$staging"}, "the failed load published"  # staging is kept for --resume

    code, output = run(root, "load", "--resume", env=env)
    assert code == 0, output
    count, distinct, total = pg.execute("SELECT count(*), count(DISTINCT id), sum(id) FROM up.big").fetchone()
    assert (count, distinct, total) == (300000, 300000, 300000 * 300001 // 2)
    assert pg.execute("SELECT count(*) FROM up.big b JOIN public.big u USING (id, v)").fetchone()[0] == 300000


@pytest.mark.mysql
@pytest.mark.slow
def test_mariadb_reader_killed_is_retried(tmp_path: Path, my, my_db: str, my_dsn: str) -> None:
    my("CREATE TABLE big (id int PRIMARY KEY, v varchar(80))")
    my(f"INSERT INTO big SELECT seq, CONCAT(REPEAT('x', 50), seq) FROM seq_1_to_{ROWS}")
    root = extract_project(tmp_path / "p", "mysql", my_db, MY_SLOW_FIRST_ROW, defaults={"jobs": 2})
    reader = f"INFO LIKE 'SELECT %%FROM `{my_db}`.`big`%%' AND INFO LIKE '%%SLEEP%%'"
    with killing(my_dsn, reader, engine="mysql") as killer:
        code, output = run(root, "extract", env={"UP_DSN": my_dsn})
    assert len(killer.killed) == 1, "the reader was never caught in the act"
    assert code == 0, output
    assert output.count("retrying up.big after a transient error") == 1, output
    assert_lake_holds_every_row(root)
