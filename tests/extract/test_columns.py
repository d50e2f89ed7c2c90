"""Columns a design names must exist upstream before anything is read (issue 10, item 5).

SQLite reads an unknown double-quoted name as a string literal, so a renamed design column
used to load its own name into every row; a ``split_by`` naming a missing column was
ignored on every engine when the table was read in one partition.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conveyor.validate.preflight import PreflightError
from conveyor.validate.run import validate

from .conftest import columns, extract, extract_state, lake, result_of, write_project


def sqlite_people(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "up.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, remark TEXT)")
    con.executemany("INSERT INTO people VALUES (?, ?, ?)", [(1, "a", "x"), (2, "b", None)])
    con.commit()
    con.close()
    monkeypatch.setenv("UP_DSN", str(db))
    return db


def nothing_written(root: Path, relation: str) -> None:
    assert lake(root).latest("up", relation) is None
    folder = lake(root).table_dir("up", relation)
    assert not folder.exists() or not [p for p in folder.iterdir() if p.is_dir()]
    assert not (root / "wh.duckdb").exists()


def test_a_sqlite_design_column_missing_upstream_fails_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_people(tmp_path, monkeypatch)
    design = {"columns": columns(("id", "integer"), ("name", "text"), ("remarks", "text"))}
    root = write_project(tmp_path / "p", "sqlite", designs={"people": design})
    outcome = extract(root)
    result = result_of(outcome, "up.people")
    assert result.status == "failed"
    assert result.error is not None
    assert 'column "remarks" does not exist in table "main.people" of source "up"' in result.error
    assert 'Did you mean "remark"?' in result.error
    nothing_written(root, "up.people")
    assert extract_state(root)["up.people"].status == "failed"


def test_sqlite_column_names_match_ignoring_ascii_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite itself matches names so: a design spelling ``ID`` reads the column ``id``."""
    sqlite_people(tmp_path, monkeypatch)
    design = {"columns": columns(("ID", "integer"), ("Name", "text"))}
    root = write_project(tmp_path / "p", "sqlite", designs={"people": design})
    outcome = extract(root)
    assert outcome.ok, outcome.extract
    manifest = lake(root).latest("up", "up.people")
    assert manifest is not None and manifest.rows == 2


def split_project(tmp_path: Path, engine: str, source_table: str) -> Path:
    design = {
        "source_table": source_table,
        "columns": columns(("id", "integer"), ("name", "text"), ("remark", "text")),
        "extract": {"split_by": "ids"},
    }
    return write_project(tmp_path / "p", engine, designs={"people": design})


def assert_split_by_refused(root: Path) -> None:
    """The design has no such column: the preflight refuses it before the extract begins."""
    with pytest.raises(PreflightError) as refused:
        extract(root)
    text = refused.value.render()
    assert 'extract.split_by of "up.people" names column "ids", which is not in the design' in text
    assert 'Did you mean "id"?' in text
    nothing_written(root, "up.people")
    assert not (root / ".conveyor" / "tracking.db").exists()  # no failed run either


def test_split_by_missing_upstream_fails_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite_people(tmp_path, monkeypatch)
    assert_split_by_refused(split_project(tmp_path, "sqlite", "main.people"))


@pytest.mark.postgres
def test_split_by_missing_upstream_fails_on_postgres(
    tmp_path: Path, pg: Any, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg.execute("CREATE TABLE people (id int PRIMARY KEY, name text, remark text)")
    pg.execute("INSERT INTO people VALUES (1, 'a', 'x')")
    monkeypatch.setenv("UP_DSN", pg_dsn)
    assert_split_by_refused(split_project(tmp_path, "postgres", "public.people"))


@pytest.mark.mysql
def test_split_by_missing_upstream_fails_on_mariadb(
    tmp_path: Path, my: Any, my_db: str, my_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    my("CREATE TABLE people (id int PRIMARY KEY, name text, remark text)")
    my("INSERT INTO people VALUES (1, 'a', 'x')")
    monkeypatch.setenv("UP_DSN", my_dsn)
    assert_split_by_refused(split_project(tmp_path, "mysql", f"{my_db}.people"))


def test_validate_reports_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`conveyor validate` already names both problems: the drift check and the design check."""
    sqlite_people(tmp_path, monkeypatch)
    design = {
        "columns": columns(("id", "integer"), ("name", "text"), ("remarks", "text")),
        "extract": {"split_by": "ids"},
    }
    root = write_project(tmp_path / "p", "sqlite", designs={"people": design})
    report = validate(root)
    codes = {(p.code, p.severity) for p in report.problems}
    assert ("upstream-column-removed", "error") in codes
    assert ("unknown-column", "error") in codes
