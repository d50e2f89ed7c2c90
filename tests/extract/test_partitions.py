"""Partitioned reads: every row exactly once, whatever the split key, and one snapshot on PostgreSQL."""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pymysql
import pytest

from .conftest import (
    MY_ADMIN,
    PG_ADMIN,
    _db_name,
    columns,
    extract,
    lake,
    manifest_table,
    reachable,
    result_of,
    write_project,
)

ROWS = 50_000

PG_BIG = f"""
CREATE TABLE big (
    id integer PRIMARY KEY,
    code text NOT NULL,
    created_at timestamptz NOT NULL,
    maybe integer,
    tag text
);
INSERT INTO big
SELECT g,
       md5(g::text),
       timestamptz '2024-01-01 00:00:00.000001+00' + g * interval '37 seconds 1 microsecond',
       CASE WHEN g % 7 = 0 THEN NULL ELSE g % 1000 END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE chr(97 + g % 26) || (g % 300)::text END
FROM generate_series(1, {ROWS}) AS g;
ANALYZE big;
"""
PG_SCHEMA = pa.schema(
    [("id", pa.int32()), ("code", pa.string()), ("created_at", pa.timestamp("us", tz="UTC")),
     ("maybe", pa.int32()), ("tag", pa.string())]
)  # fmt: skip
MY_SCHEMA = pa.schema([("id", pa.int32()), ("tag", pa.string()), ("at", pa.timestamp("us"))])
BIG_COLUMNS = columns(
    ("id", "integer"), ("code", "text"), ("created_at", "timestamptz"), ("maybe", "integer"), ("tag", "text")
)


@pytest.fixture(scope="module")
def pg_big() -> Iterator[tuple[str, pa.Table]]:
    """A PostgreSQL database with a 50k-row table, shared by the module's read-only tests."""
    if not reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = _db_name()
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            conn.execute(PG_BIG.encode())
            rows = conn.execute("SELECT id, code, created_at, maybe, tag FROM big ORDER BY id").fetchall()
        yield dsn, as_arrow(rows, PG_SCHEMA)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"'.encode())


def partitions_of(manifest: Any) -> set[str]:
    """The partition prefixes of an extract's part files (``part-002-00001.parquet`` -> ``002``)."""
    found = set()
    for part in manifest.files:
        match = re.fullmatch(r"part-(\d{3})-\d{5}\.parquet", part.path)
        found.add(match.group(1) if match else "single")
    return found


def as_arrow(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    """Rows fetched through the driver as an Arrow table (for a fast, exact comparison)."""
    return pa.table([list(c) for c in zip(*rows, strict=True)], schema=schema)


def exact_rows(manifest: Any) -> pa.Table:
    """The extract's rows sorted by id, after checking that no id was read twice."""
    table = manifest_table(manifest)
    distinct = pc.count_distinct(table.column("id")).as_py()
    assert distinct == table.num_rows, f"{table.num_rows - distinct} rows read more than once"
    return table.sort_by("id")


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("split_by", "partitions"),
    [("id", 4), ("code", 4), ("created_at", 4), ("maybe", 4), ("tag", 5), (None, 3)],
    ids=["integer", "text", "timestamptz", "integer-with-nulls", "text-with-nulls", "ctid"],
)
def test_postgres_partitions_read_every_row_once(
    tmp_path: Path, pg_big: tuple[str, pa.Table], monkeypatch, split_by: str | None, partitions: int
) -> None:
    dsn, expected = pg_big
    monkeypatch.setenv("UP_DSN", dsn)
    settings = {"extract": {"partitions": partitions, **({"split_by": split_by} if split_by else {})}}
    root = write_project(
        tmp_path / "p",
        "postgres",
        designs={"big": {"columns": BIG_COLUMNS, **settings}},
        settings={"lake": {"part_rows": 20_000}, "defaults": {"batch_rows": 8192}},
    )
    outcome = extract(root, jobs=2)
    assert outcome.ok, outcome.extract
    manifest = lake(root).latest("up", "up.big")
    assert manifest is not None and manifest.rows == ROWS == result_of(outcome, "up.big").rows
    assert partitions_of(manifest) == {f"{i:03d}" for i in range(partitions)}
    assert exact_rows(manifest).equals(expected)


@pytest.fixture(scope="module")
def my_big() -> Iterator[tuple[str, str, pa.Table]]:
    if not reachable(3306):
        pytest.skip("MariaDB/MySQL is not running on 127.0.0.1:3306")
    name = _db_name()
    admin = pymysql.connect(**MY_ADMIN, autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{name}`")
            cur.execute("CREATE TABLE big (id int PRIMARY KEY, tag varchar(10), at datetime(6) NOT NULL)")
            cur.execute(
                "INSERT INTO big SELECT seq, IF(seq % 5 = 0, NULL, CONCAT(CHAR(97 + seq % 26), seq % 300)), "
                "TIMESTAMP '2024-01-01 00:00:00.000001' + INTERVAL seq * 37 SECOND FROM seq_1_to_20000"
            )
            cur.execute("SELECT id, tag, at FROM big ORDER BY id")
            expected = as_arrow(list(cur.fetchall()), MY_SCHEMA)
        yield f"mysql://root@127.0.0.1:3306/{name}", name, expected
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.mark.mysql
@pytest.mark.parametrize(
    ("split_by", "partitions"), [("id", 4), ("tag", 3), ("at", 4)], ids=["integer", "text-with-nulls", "datetime"]
)
def test_mariadb_partitions_read_every_row_once(tmp_path: Path, my_big, monkeypatch, split_by: str, partitions: int):
    dsn, db, expected = my_big
    monkeypatch.setenv("UP_DSN", dsn)
    design = {
        "source_table": f"{db}.big",
        "columns": columns(("id", "integer"), ("tag", "text"), ("at", "timestamp")),
        "extract": {"split_by": split_by, "partitions": partitions},
    }
    root = write_project(tmp_path / "p", "mysql", designs={"big": design})
    outcome = extract(root, jobs=2)
    assert outcome.ok, outcome.extract
    manifest = lake(root).latest("up", "up.big")
    assert manifest is not None and manifest.rows == expected.num_rows
    assert partitions_of(manifest) == {f"{i:03d}" for i in range(partitions)}
    assert exact_rows(manifest).equals(expected)


# ------------------------------------------------------------------------------ snapshot

ACCOUNTS = 20_000
START_BALANCE = 100


class Transfers(threading.Thread):
    """Commits transfers (sum kept) and row moves (count kept) until stopped."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stop = threading.Event()
        self.committed = 0
        self.error: BaseException | None = None
        self.random = random.Random(7)

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                live = list(range(1, ACCOUNTS + 1))
                free = list(range(ACCOUNTS + 1, ACCOUNTS + 5001))
                while not self.stop.is_set():
                    with conn.transaction():
                        if self.committed % 3 == 2:
                            # move a row to another id: from one partition to another
                            index = self.random.randrange(len(live))
                            old, new = live[index], free.pop(self.random.randrange(len(free)))
                            conn.execute("UPDATE accounts SET id = %s WHERE id = %s", (new, old))
                            live[index] = new
                            free.append(old)
                        else:
                            a, b = self.random.sample(live, 2)
                            amount = self.random.randint(1, 50)
                            conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, a))
                            conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, b))
                    self.committed += 1
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_partitions_share_one_snapshot(tmp_path: Path, pg, pg_dsn: str, monkeypatch) -> None:
    """Transfers commit while 16 partitions are read: the extract must still be one instant's state."""
    monkeypatch.setenv("UP_DSN", pg_dsn)
    pg.execute(
        f"CREATE TABLE accounts (id integer PRIMARY KEY, balance bigint NOT NULL);"
        f"INSERT INTO accounts SELECT g, {START_BALANCE} FROM generate_series(1, {ACCOUNTS}) g"
    )
    design = {
        "columns": columns(("id", "integer"), ("balance", "bigint")),
        "extract": {"split_by": "id", "partitions": 16},
    }
    root = write_project(tmp_path / "p", "postgres", designs={"accounts": design})

    transfers = Transfers(pg_dsn)
    transfers.start()
    try:
        deadline = time.monotonic() + 10
        while transfers.committed < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        before = transfers.committed
        outcome = extract(root, jobs=2)
        during = transfers.committed - before
    finally:
        transfers.stop.set()
        transfers.join(10)
    assert transfers.error is None, transfers.error
    assert outcome.ok, outcome.extract
    assert during >= 20, f"only {during} transactions committed during the extract: the test proves nothing"

    manifest = lake(root).latest("up", "up.accounts")
    assert manifest is not None and len(partitions_of(manifest)) == 16
    table = manifest_table(manifest)
    count, distinct = table.num_rows, pc.count_distinct(table.column("id")).as_py()
    assert count == distinct, f"{count - distinct} rows read twice"
    assert count == ACCOUNTS, f"{count} rows, but every transaction keeps {ACCOUNTS}"
    assert pc.sum(table.column("balance")).as_py() == ACCOUNTS * START_BALANCE
    assert pg.execute("SELECT sum(balance), count(*) FROM accounts").fetchone() == (ACCOUNTS * START_BALANCE, ACCOUNTS)
