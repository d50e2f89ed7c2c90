"""The lake, the writer lock, the watermark and the tracking rows belong to the relation.

Two designs over one upstream table (issue 10, item 2) extract in one run and load their
own rows; a lake written before relations owned their folders is still read, but only the
manifests of the relation asked for; upstream names never reach outside the lake (issue 11,
item 4).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import psycopg.sql
import pytest

from conveyor.design.upstream import join_upstream
from conveyor.lake.manifest import MANIFEST, read_manifest, write_manifest
from conveyor.sources.lake import LakeSource

from .conftest import (
    columns,
    extract,
    extract_state,
    lake,
    load,
    result_of,
    warehouse_rows,
    write_project,
)

RENTAL = columns(("id", "integer"), ("store", "integer"), ("rented_at", "bigint"))


def rental_db(path: Path, rows: int = 300) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE rental (id INTEGER PRIMARY KEY, store INTEGER NOT NULL, rented_at INTEGER NOT NULL)")
    con.executemany("INSERT INTO rental VALUES (?, ?, ?)", [(i, i % 3, 1000 + i) for i in range(1, rows + 1)])
    con.commit()
    con.close()
    return path


def add_rentals(path: Path, ids: range) -> None:
    con = sqlite3.connect(path)
    con.executemany("INSERT INTO rental VALUES (?, ?, ?)", [(i, i % 3, 1000 + i) for i in ids])
    con.commit()
    con.close()


def upstream_rows(path: Path, where: str = "1 = 1") -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT id, store, rented_at FROM rental WHERE {where} ORDER BY id").fetchall()
    finally:
        con.close()


def two_designs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, incremental: bool = False) -> tuple[Path, Path]:
    """``up.rental`` (every row) and ``up.rental_store1`` (a condition) over the one table main.rental."""
    db = rental_db(tmp_path / "up.db")
    monkeypatch.setenv("UP_DSN", str(db))
    key = {"constraints": {"primary_key": ["id"]}}
    narrow: dict[str, Any] = {"condition": "store = 1"}
    if incremental:
        narrow["incremental"] = {"cursor": "rented_at"}
    designs = {
        "rental": {"source_table": "main.rental", "columns": RENTAL, **key},
        "rental_store1": {"source_table": "main.rental", "columns": RENTAL, "extract": narrow, **key},
    }
    return write_project(tmp_path / "p", "sqlite", designs=designs), db


def test_two_designs_over_one_table_extract_in_one_run_and_load_their_own_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, db = two_designs(tmp_path, monkeypatch)
    for _ in range(2):  # twice: the second extract of each must not take the other's as its previous one
        outcome = extract(root, jobs=2)
        assert outcome.ok, outcome.extract
    full, narrow = lake(root).latest("up", "up.rental"), lake(root).latest("up", "up.rental_store1")
    assert full is not None and narrow is not None
    assert (full.relation, full.rows, narrow.relation, narrow.rows) == ("up.rental", 300, "up.rental_store1", 100)
    assert full.folder is not None and narrow.folder is not None and full.folder.parent != narrow.folder.parent
    assert full.upstream_table == narrow.upstream_table == "main.rental"
    state = extract_state(root)
    assert {name: (row.status, row.upstream_table) for name, row in state.items()} == {
        "up.rental": ("succeeded", "main.rental"),
        "up.rental_store1": ("succeeded", "main.rental"),
    }
    load(root)
    assert warehouse_rows(root, "up.rental", "id") == upstream_rows(db)
    assert warehouse_rows(root, "up.rental_store1", "id") == upstream_rows(db, "store = 1")


def test_each_design_keeps_its_own_watermark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, db = two_designs(tmp_path, monkeypatch, incremental=True)
    assert extract(root).ok
    add_rentals(db, range(301, 331))
    assert extract(root, "up.rental").ok  # a full re-extract of the other design moves nothing of this one
    assert extract(root, "up.rental_store1").ok
    increment = lake(root).latest("up", "up.rental_store1")
    assert increment is not None and increment.incremental
    assert increment.watermark is not None and increment.watermark["low"] == 1298  # 298: the last store 1 row
    load(root)
    assert warehouse_rows(root, "up.rental", "id") == upstream_rows(db)
    assert warehouse_rows(root, "up.rental_store1", "id") == upstream_rows(db, "store = 1")


def test_an_old_lake_is_read_through_the_manifests_of_each_relation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Extracts under the upstream-named folder (the old layout) stay readable, never mixed."""
    root, db = two_designs(tmp_path, monkeypatch, incremental=True)
    assert extract(root).ok
    data = root / "lake" / "data" / "up"
    legacy = data / "main.rental"
    legacy.mkdir()
    for relation in ("up.rental", "up.rental_store1"):  # both designs' extracts in the one old folder
        for folder in (data / relation).iterdir():
            if folder.is_dir():
                shutil.move(folder, legacy / folder.name)
        shutil.rmtree(data / relation)
    committed = lake(root).committed("up", "up.rental_store1", legacy="main.rental")
    assert [m.relation for m in committed] == ["up.rental_store1"]
    assert lake(root).latest("up", "up.rental_store1") is None  # without the legacy name: nothing

    load(root)  # each relation takes only its own manifests from the shared old folder
    assert warehouse_rows(root, "up.rental", "id") == upstream_rows(db)
    assert warehouse_rows(root, "up.rental_store1", "id") == upstream_rows(db, "store = 1")

    add_rentals(db, range(301, 341))
    assert extract(root, "up.rental_store1").ok  # continues from the old folder's watermark
    increment = lake(root).latest("up", "up.rental_store1")
    assert increment is not None and increment.incremental and increment.folder is not None
    assert increment.folder.parent.name == "up.rental_store1"
    chain = lake(root).chain("up", "up.rental_store1", legacy="main.rental")
    assert [m.folder.parent.name for m in chain if m.folder] == ["main.rental", "up.rental_store1"]
    load(root)
    assert warehouse_rows(root, "up.rental_store1", "id") == upstream_rows(db, "store = 1")


def test_a_manifest_of_another_relation_in_the_own_folder_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old folder named like a relation may hold another design's extracts: they are not this one's."""
    root, db = two_designs(tmp_path, monkeypatch)
    assert extract(root, "up.rental_store1").ok
    narrow = lake(root).latest("up", "up.rental_store1")
    assert narrow is not None and narrow.folder is not None
    intruder = lake(root).table_dir("up", "up.rental") / narrow.extract_id
    shutil.copytree(narrow.folder, intruder)
    manifest = read_manifest(intruder)
    (intruder / MANIFEST).unlink()  # a manifest is never replaced: write it anew
    write_manifest(intruder, manifest)  # still says relation up.rental_store1
    assert (intruder / MANIFEST).is_file()
    assert lake(root).latest("up", "up.rental") is None
    assert extract(root, "up.rental").ok
    load(root)
    assert warehouse_rows(root, "up.rental", "id") == upstream_rows(db)


# --------------------------------------------------------------------------- hostile names

HOSTILE = ["x/../../../../outside/escaped", "../../escaped", "..", "a\\b/c", ".lock", "%2e%2e", "/tmp/escaped"]


def deep_project(tmp_path: Path) -> Path:
    """A project six folders below ``tmp_path``: a name climbing out of the lake still lands in ``tmp_path``."""
    return tmp_path / "a" / "b" / "c" / "d" / "e" / "p"


def snapshot(tmp_path: Path) -> set[Path]:
    return set(tmp_path.rglob("*"))


def assert_only_lake_and_tracking_written(tmp_path: Path, root: Path, before: set[Path]) -> None:
    allowed = (root / "lake", root / ".conveyor")
    created = [p for p in snapshot(tmp_path) - before if not any(p.is_relative_to(a) for a in allowed)]
    assert created == [], f"the extract wrote outside the lake: {created}"
    assert not Path("/tmp/escaped").exists() and not Path("/tmp/outside").exists()


@pytest.mark.parametrize("name", HOSTILE)
def test_sqlite_table_names_never_leave_the_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    db = tmp_path / "up.db"
    con = sqlite3.connect(db)
    quoted = '"' + name.replace('"', '""') + '"'
    con.execute(f"CREATE TABLE {quoted} (id INTEGER PRIMARY KEY)")
    con.execute(f"INSERT INTO {quoted} VALUES (1), (2)")
    con.commit()
    con.close()
    monkeypatch.setenv("UP_DSN", str(db))
    # a name with a dot is quoted in source_table (public."dotted.name"), as bootstrap writes it
    design = {"source_table": join_upstream("main", name), "columns": columns(("id", "integer"))}
    root = write_project(deep_project(tmp_path), "sqlite", designs={"hostile": design})
    before = snapshot(tmp_path)
    outcome = extract(root)
    assert_only_lake_and_tracking_written(tmp_path, root, before)
    result = result_of(outcome, "up.hostile")
    assert result.status == "succeeded", result.error
    manifest = lake(root).latest("up", "up.hostile")
    assert manifest is not None and manifest.rows == 2 and manifest.upstream_table == f"main.{name}"
    load(root)
    assert warehouse_rows(root, "up.hostile") == [(1,), (2,)]


@pytest.mark.postgres
@pytest.mark.parametrize("name", HOSTILE)
def test_postgres_table_names_never_leave_the_lake(
    tmp_path: Path, pg: Any, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    table = psycopg.sql.Identifier(name)
    pg.execute(psycopg.sql.SQL("CREATE TABLE {} (id int PRIMARY KEY)").format(table))
    pg.execute(psycopg.sql.SQL("INSERT INTO {} VALUES (7)").format(table))
    monkeypatch.setenv("UP_DSN", pg_dsn)
    design = {"source_table": join_upstream("public", name), "columns": columns(("id", "integer"))}
    root = write_project(deep_project(tmp_path), "postgres", designs={"hostile": design})
    before = snapshot(tmp_path)
    outcome = extract(root)
    assert_only_lake_and_tracking_written(tmp_path, root, before)
    result = result_of(outcome, "up.hostile")
    assert result.status == "succeeded", result.error
    load(root)
    assert warehouse_rows(root, "up.hostile") == [(7,)]


def test_the_lake_source_reads_relation_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another project reading this lake (type: lake) sees the relation-named folders."""
    root, _ = two_designs(tmp_path, monkeypatch)
    assert extract(root).ok

    source = LakeSource("other", str(root / "lake" / "data" / "up"))
    assert source.list_tables() == [("up", "rental"), ("up", "rental_store1")]
    assert source.column_names("up", "rental_store1") == ["id", "store", "rented_at"]
    assert source.describe("up", "rental_store1").row_estimate == 100
