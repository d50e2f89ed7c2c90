"""The preflight never opens a database file this process has open.

SQLite and DuckDB lock their files with POSIX locks, and closing any descriptor of a file
drops every such lock the process holds on it: reading a pipeline run's own tracking store
to check its header let a second run checkpoint under the first and corrupt the store
("database disk image is malformed", found by tests/faults/test_concurrency.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb

from conveyor.validate import paths


def test_an_open_sqlite_file_is_not_read_and_a_closed_one_is(tmp_path: Path) -> None:
    db = tmp_path / "tracking.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    assert paths._head(db, 16) is None  # open here: reading it would drop SQLite's locks
    con.close()
    assert paths._head(db, 16) == paths.SQLITE_MAGIC


def test_an_open_duckdb_file_is_not_read(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.execute("CHECKPOINT")
    assert paths._head(db, 12) is None
    con.close()
    head = paths._head(db, 12)
    assert head is not None and head[8:12] == paths.DUCKDB_MAGIC
