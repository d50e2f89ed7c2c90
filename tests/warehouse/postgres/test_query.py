"""``conveyor query`` (``Warehouse.query``): the same read-only query gives the same Python values
on DuckDB and on PostgreSQL, and neither lets it write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.errors import UserError
from conveyor.warehouse import open_warehouse

pytestmark = pytest.mark.postgres

ROWS = st.lists(
    st.tuples(
        st.integers(-(2**63), 2**63 - 1),
        st.decimals(min_value=-(10**12), max_value=10**12, places=2, allow_nan=False, allow_infinity=False),
        st.one_of(st.none(), st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)),
        st.datetimes(timezones=st.just(UTC)),
    ),
    max_size=8,
    unique_by=lambda row: row[0],  # one order on both engines without comparing text (collations differ)
)


@pytest.fixture
def both(pgwh_dsn: str, tmp_path: Path) -> tuple[Any, Any, Path]:
    duck = open_warehouse("duckdb", "d", str(tmp_path / "w.duckdb"), root=tmp_path)
    pg = open_warehouse("postgres", "p", pgwh_dsn, root=tmp_path)
    return duck, pg, tmp_path / "w.duckdb"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_the_same_query_gives_the_same_values(
    both: tuple[Any, Any, Path], sql: Callable[..., list[tuple[Any, ...]]], rows: list[tuple[Any, ...]]
) -> None:
    duck, pg, path = both
    ddl = "CREATE TABLE q.t (i bigint, d decimal(15,2), s text, ts timestamptz)"
    sql("DROP SCHEMA IF EXISTS q CASCADE")
    sql("CREATE SCHEMA q")
    sql(ddl)
    for row in rows:
        sql("INSERT INTO q.t VALUES (%s, %s, %s, %s)", row)
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE SCHEMA q")
        con.execute(ddl)
        if rows:
            con.executemany("INSERT INTO q.t VALUES (?, ?, ?, ?)", rows)
    query = "SELECT i, d, s, ts FROM q.t ORDER BY i"
    on_duck, on_pg = duck.query(query, 100), pg.query(query, 100)
    assert on_duck.columns == on_pg.columns == ["i", "d", "s", "ts"]
    assert on_duck.rows == on_pg.rows == sorted(rows)
    assert on_duck.more is on_pg.more is False


def test_a_query_cannot_write_and_a_limit_says_there_is_more(
    both: tuple[Any, Any, Path], sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    duck, pg, path = both
    sql("CREATE SCHEMA q")
    sql("CREATE TABLE q.t AS SELECT g AS i FROM generate_series(1, 5) AS g")
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA q")
        con.execute("CREATE TABLE q.t AS SELECT range + 1 AS i FROM range(5)")
    for warehouse in (duck, pg):
        limited = warehouse.query("SELECT i FROM q.t ORDER BY i", 3)
        assert (limited.rows, limited.more) == ([(1,), (2,), (3,)], True)
        with pytest.raises(UserError, match="the query failed"):
            warehouse.query("DELETE FROM q.t", 10)
        assert warehouse.query("SELECT count(*) FROM q.t", 10).rows == [(5,)]
