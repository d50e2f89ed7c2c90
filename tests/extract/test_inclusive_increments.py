"""Incremental reads are inclusive and lose no row at the watermark (issue 10, item 1).

Each engine (SQLite, PostgreSQL, MariaDB) with an integer and a second-precision timestamp
cursor, with and without a primary key: rows written in the watermark's own cursor tick
after an extract reach the warehouse, re-read rows are merged by key or (without a key)
taken out of the increment, and a ``lag`` overlap duplicates nothing. The property test
drives random write sequences and compares the DuckDB warehouse with the upstream table as
its own driver reads it, after every extract and load or update.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import api

from .conftest import write_project
from .inclusive import Table, sqlite_runner

ENGINES = [
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
]
CURSORS = [pytest.param(False, id="int"), pytest.param(True, id="seconds")]
KEYS = [pytest.param(True, id="key"), pytest.param(False, id="no-key")]


@dataclass
class Upstream:
    engine: str
    dsn: str
    schema: str
    run: Callable[..., list[tuple[Any, ...]]]

    def table(self, *, timestamp: bool, key: bool) -> Table:
        table = Table(self.engine, f"t_{uuid.uuid4().hex[:10]}", self.schema, self.run, timestamp, key)
        table.create()
        return table


@pytest.fixture
def upstream(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    engine = request.param
    if engine == "sqlite":
        path = tmp_path / "up.db"
        found = Upstream("sqlite", str(path), "main", sqlite_runner(path))
    elif engine == "postgres":
        conn = request.getfixturevalue("pg")

        def run_pg(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

        found = Upstream("postgres", request.getfixturevalue("pg_dsn"), "public", run_pg)
    else:
        dsn, database = request.getfixturevalue("my_dsn"), request.getfixturevalue("my_db")
        found = Upstream("mysql", dsn, database, request.getfixturevalue("my"))
    monkeypatch.setenv("UP_DSN", found.dsn)
    yield found


def project(folder: Path, upstream: Upstream, table: Table, lag: int | None = None) -> Path:
    return write_project(folder, upstream.engine, designs={"t": table.design(lag)})


def extract_and_apply(root: Path, how: str) -> None:
    extracted = api.extract_tables(api.open_project(root), (), jobs=1)
    assert extracted.ok, extracted.extract
    applied = (api.load if how == "load" else api.update)(api.open_project(root), ())
    assert applied.ok, applied.build


@pytest.mark.parametrize("upstream", ENGINES, indirect=True)
@pytest.mark.parametrize("timestamp", CURSORS)
@pytest.mark.parametrize("key", KEYS)
def test_rows_in_the_watermark_tick_are_not_lost(
    tmp_path: Path, upstream: Upstream, timestamp: bool, key: bool
) -> None:
    table = upstream.table(timestamp=timestamp, key=key)
    table.insert([(k, f"p{k}", k - 1) for k in range(1, 6)])  # cursors 0..4
    root = project(tmp_path / "p", upstream, table)
    extract_and_apply(root, "load")
    assert table.loaded(root) == table.rows()

    # the same tick as the watermark (4): a new row, and (without a key) a second copy of a row
    table.insert([(6, "late", 4)])
    if key:
        table.update(5, "changed in the tick", 4)
    else:
        table.insert([(5, "p5", 4)])
    for how in ("update", "load"):
        extract_and_apply(root, how)
        assert table.loaded(root) == table.rows()

    if key:  # updated twice within one cursor tick: the second version wins
        table.update(5, "again in the tick", 4)
        extract_and_apply(root, "update")
        assert table.loaded(root) == table.rows()


@pytest.mark.parametrize("upstream", ENGINES, indirect=True)
@pytest.mark.parametrize("timestamp", CURSORS)
def test_a_lag_overlap_without_a_key_duplicates_nothing(tmp_path: Path, upstream: Upstream, timestamp: bool) -> None:
    table = upstream.table(timestamp=timestamp, key=False)
    table.insert([(k, None if k % 2 else f"p{k}", k) for k in range(1, 11)])
    root = project(tmp_path / "p", upstream, table, lag=3)
    extract_and_apply(root, "load")
    table.insert([(11, None, 10), (12, "p12", 11), (13, None, 8)])  # 13 committed late, inside the lag
    extract_and_apply(root, "update")
    assert table.loaded(root) == table.rows()
    extract_and_apply(root, "load")  # nothing new: the re-read window adds nothing
    assert table.loaded(root) == table.rows()


# --------------------------------------------------------------------------- property


@dataclass
class Model:
    """The writes of one example, so the next cursor values follow a clock that never runs back."""

    table: Table
    lag: int | None
    now: int = 10
    mark: int = 0
    """The largest cursor value at the last extract: the watermark the next read continues from."""
    keys: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    def cursor(self, advance: int, back: int) -> int:
        """A write at ``now``, or a late commit up to ``lag`` below the watermark (never lower)."""
        self.now += advance
        floor = self.mark - (self.lag or 0)
        return max(self.now - back, floor) if self.lag else self.now

    def extracted(self) -> None:
        """An extract is about to read everything: its high-water mark is the largest cursor."""
        self.mark = max([self.mark, *(r[2] for r in self.table.rows())])

    def apply(self, op: tuple[Any, ...], rows: list[tuple[int, str | None, int]]) -> None:
        kind, advance, back, payload, pick = op
        cursor = self.cursor(advance, back)
        if kind == "update" and self.table.key and rows:
            self.table.update(rows[pick % len(rows)][0], payload, cursor)
        elif kind == "repeat" and not self.table.key:
            # another copy of a whole row the next read sees again (its cursor is in the window)
            seen = [r for r in rows if r[2] >= self.mark - (self.lag or 0)]
            if seen:
                self.table.insert([seen[pick % len(seen)]])
        else:
            self.table.insert([(next(self.keys), payload, cursor)] * (1 if self.table.key else 1 + pick % 2))


OPS = st.tuples(
    st.sampled_from(["insert", "update", "repeat"]),
    st.sampled_from([0, 0, 0, 1, 2]),  # mostly the watermark's own tick
    st.integers(0, 3),
    st.one_of(st.none(), st.sampled_from(["a", "b", "é"])),
    st.integers(0, 50),
)
STEPS = st.lists(st.tuples(st.lists(OPS, max_size=5), st.sampled_from(["load", "update"])), min_size=1, max_size=4)


@pytest.mark.slow
@pytest.mark.parametrize("upstream", ENGINES, indirect=True)
@pytest.mark.parametrize("timestamp", CURSORS)
@pytest.mark.parametrize("key", KEYS)
def test_warehouse_equals_upstream_after_every_increment(
    tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, timestamp: bool, key: bool
) -> None:
    @settings(
        max_examples=6,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(lag=st.sampled_from([None, None, 2]), first=st.lists(OPS, min_size=1, max_size=4), steps=STEPS)
    def example(lag: int | None, first: list[tuple[Any, ...]], steps: list[tuple[list[Any], str]]) -> None:
        table = upstream.table(timestamp=timestamp, key=key)
        model = Model(table, lag)
        for op in first:
            model.apply(op, table.rows())
        root = project(tmp_path_factory.mktemp("example") / "p", upstream, table, lag)
        model.extracted()
        extract_and_apply(root, "load")
        assert table.loaded(root) == table.rows()
        for ops, how in steps:
            for op in ops:
                model.apply(op, table.rows())
            model.extracted()
            extract_and_apply(root, how)
            assert table.loaded(root) == table.rows(), f"after {how} of {ops}"

    example()
