"""Round-trip property test, PostgreSQL upstream: random tables over the whole mapped vocabulary.

Each example creates a table in PostgreSQL (columns drawn from :data:`pg.VOCAB`, values biased
to edges), bootstraps a design for it, extracts it (in one read or in 2..4 partitions of
``id``), loads it into DuckDB and into PostgreSQL, and compares the lake and both warehouses
value by value with what psycopg reads from the upstream table.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import pg
from .conftest import profile, scratch_dir
from .harness import Table, bootstrap_one, check_everywhere, edit_design, extract_ok, remove, tables, write_project

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def upstream(pg_up: Any) -> Any:
    pg.setup(pg_up)
    return pg_up


def round_trip(conn: Any, dsn: str, warehouse: str, table: Table, partitions: int | None) -> None:
    pg.create(conn, table)
    root = write_project(scratch_dir("pg"), "postgres", dsn, [f"public.{table.name}"], warehouse)
    try:
        relation = bootstrap_one(root)
        if partitions:
            edit_design(root, relation, lambda d: d.setdefault("extract", {}).update(split_by="id", partitions=partitions))
        extract_ok(root)
        expected = pg.read(conn, table.name, table.cols)
        check_everywhere(root, relation, f"public.{table.name}", table.cols, expected, warehouse)
    finally:
        pg.drop(conn, table.name)
        remove(root)


@profile(examples=12)
@given(table=tables(pg.VOCAB), partitions=st.sampled_from([None, None, 2, 3, 4]))
def test_postgres_tables_round_trip_exactly(
    upstream: Any, pg_upstream_dsn: str, pg_warehouse_dsn: str, table: Table, partitions: int | None
) -> None:
    round_trip(upstream, pg_upstream_dsn, pg_warehouse_dsn, table, partitions)
