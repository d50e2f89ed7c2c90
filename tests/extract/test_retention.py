"""Lake retention: lake.keep full extracts stay, and no chain a load needs is ever cut."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import columns, extract, lake, load, warehouse_rows, write_project

pytestmark = pytest.mark.postgres


def folders(root: Path, table: str) -> list[str]:
    return sorted(p.name for p in (root / "lake/data/up" / table).iterdir() if p.is_dir())


def shape(root: Path, table: str) -> list[str]:
    """``F`` / ``I`` per committed extract, oldest first; the folders on disk must be exactly these."""
    committed = lake(root).committed("up", table)
    assert folders(root, table) == [m.extract_id for m in committed]
    return ["I" if m.incremental else "F" for m in committed]


def test_keep_two_full_extracts(tmp_path: Path, pg, pg_dsn: str, monkeypatch) -> None:
    monkeypatch.setenv("UP_DSN", pg_dsn)
    pg.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    root = write_project(
        tmp_path / "p",
        "postgres",
        designs={"t": {"columns": columns(("id", "integer"))}},
        settings={"lake": {"keep": 2}},
    )
    ids = []
    for n in range(4):
        pg.execute("INSERT INTO t VALUES (%s)", (n + 2,))
        assert extract(root).ok
        ids.append(lake(root).latest("up", "up.t").extract_id)
    assert folders(root, "up.t") == ids[2:]
    assert [m.rows for m in lake(root).committed("up", "up.t")] == [4, 5]


def test_incremental_chains_survive_pruning(tmp_path: Path, pg, pg_dsn: str, monkeypatch) -> None:
    monkeypatch.setenv("UP_DSN", pg_dsn)
    pg.execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, 0 FROM generate_series(1, 5) g")
    design = {
        "columns": columns(("id", "integer"), ("v", "integer")),
        "constraints": {"primary_key": ["id"]},
        "extract": {"incremental": {"cursor": "id"}},
    }
    root = write_project(tmp_path / "p", "postgres", designs={"t": design}, settings={"lake": {"keep": 2}})
    next_id = 6

    def grow(full: bool = False) -> None:
        nonlocal next_id
        pg.execute("INSERT INTO t VALUES (%s, %s)", (next_id, next_id))
        next_id += 1
        assert extract(root, full=full).ok

    def loaded_equals_upstream() -> None:
        load(root)
        assert warehouse_rows(root, "up.t", "id") == pg.execute("SELECT id, v FROM t ORDER BY id").fetchall()

    assert extract(root).ok
    grow()
    grow()
    assert shape(root, "up.t") == ["F", "I", "I"]
    grow(full=True)
    grow()
    assert shape(root, "up.t") == ["F", "I", "I", "F", "I"]  # two full extracts: nothing to prune
    loaded_equals_upstream()
    grow(full=True)
    assert shape(root, "up.t") == ["F", "I", "F"]  # the oldest chain goes as a whole
    grow()
    grow()
    assert shape(root, "up.t") == ["F", "I", "F", "I", "I"]
    chain = lake(root).chain("up", "up.t")
    assert ["I" if m.incremental else "F" for m in chain] == ["F", "I", "I"]
    # each increment re-reads the row at the watermark (inclusive bound) besides its new row
    assert chain[0].rows == next_id - 3 and [m.rows for m in chain[1:]] == [2, 2]
    loaded_equals_upstream()
