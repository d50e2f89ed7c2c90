"""Round-trip property test, MariaDB upstream: random tables over the whole mapped vocabulary.

Like the PostgreSQL test: create (pymysql), bootstrap, extract (one read or 2..4 partitions),
load into DuckDB and PostgreSQL, compare lake and warehouses with pymysql's read of the table.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from . import my
from .conftest import profile, scratch_dir
from .harness import (
    Col,
    Table,
    apply_split,
    bootstrap_one,
    check_everywhere,
    design_file,
    extract_ok,
    remove,
    split_settings,
    tables,
    write_project,
)

pytestmark = [pytest.mark.mysql, pytest.mark.postgres, pytest.mark.slow]


def round_trip(conn: Any, db: str, warehouse: str, table: Table, partitions: int | None, pick: int = 0) -> None:
    my.create(conn, table)
    dsn = f"mysql://root@127.0.0.1:3306/{db}"
    root = write_project(scratch_dir("my"), "mysql", dsn, [f"{db}.{table.name}"], warehouse)
    try:
        relation = bootstrap_one(root)
        apply_split(root, relation, split_settings(table, partitions, pick))
        extract_ok(root)
        expected = my.read(conn, table.name, table.cols)
        check_everywhere(root, relation, f"{db}.{table.name}", table.cols, expected, warehouse)
    finally:
        my.drop(conn, table.name)
        remove(root)


@profile(examples=12)
@given(table=tables(my.VOCAB), partitions=st.sampled_from([None, None, 2, 3, 4]), pick=st.integers(0, 7))
def test_mariadb_tables_round_trip_exactly(
    my_up: Any, my_upstream_db: str, pg_warehouse_dsn: str, table: Table, partitions: int | None, pick: int
) -> None:
    round_trip(my_up, my_upstream_db, pg_warehouse_dsn, table, partitions, pick)


@profile(examples=3)
@given(table=tables(my.ZERO_DATES, max_cols=2, max_rows=3))
def test_mariadb_zero_dates_read_as_null(my_up: Any, my_upstream_db: str, pg_warehouse_dsn: str, table: Table) -> None:
    """docs/types.md: zero dates (and zero months or days) are read as NULL."""
    with my_up.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
    try:
        table.cols = [Col(c.name, c.kind, False) for c in table.cols]
        round_trip(my_up, my_upstream_db, pg_warehouse_dsn, table, None)
    finally:
        with my_up.cursor() as cur:
            cur.execute("SET SESSION sql_mode = DEFAULT")


ZERO = my.ZERO_DATES[0]


@profile(examples=2)
@example(table=Table("t_zero_not_null", [Col("d", ZERO, True)], [1], [["0000-00-00"]]))
@given(table=tables(my.ZERO_DATES, max_cols=1, max_rows=2))
def test_mariadb_zero_dates_in_not_null_columns(my_up: Any, my_upstream_db: str, pg_warehouse_dsn: str, table: Table):
    with my_up.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
    try:
        table.cols = [Col(c.name, c.kind, True) for c in table.cols]
        table.rows = [[v if v is not None else "0000-00-00" for v in r] for r in table.rows]
        round_trip(my_up, my_upstream_db, pg_warehouse_dsn, table, None)
    finally:
        with my_up.cursor() as cur:
            cur.execute("SET SESSION sql_mode = DEFAULT")


@profile(examples=3)
@example(
    table=Table("t_geometry", [Col("g", my.UNMAPPED[0], False), Col("n", my.VOCAB[6], False)], [1], [["POINT(1 2)", 7]])
)
@given(
    table=tables(my.UNMAPPED + my.VOCAB[:3], max_cols=3, max_rows=3).filter(
        lambda t: any(c.kind in my.UNMAPPED for c in t.cols)
    )
)
def test_mariadb_unmapped_types_keep_the_table(my_up: Any, my_upstream_db: str, pg_warehouse_dsn: str, table: Table):
    """A table with unmapped columns still gets a design; they are read as text or skipped, the rest exactly."""
    my.create(my_up, table)
    dsn = f"mysql://root@127.0.0.1:3306/{my_upstream_db}"
    root = write_project(scratch_dir("myunm"), "mysql", dsn, [f"{my_upstream_db}.{table.name}"], pg_warehouse_dsn)
    try:
        relation = bootstrap_one(root)
        design = {c["name"]: c for c in yaml.safe_load(design_file(root, relation).read_text())["columns"]}
        kept = [c for c in table.cols if not design[c.name].get("skipped")]
        odd = [c.name for c in kept if c.kind in my.UNMAPPED and design[c.name]["type"] != "text"]
        assert not odd, f"unmapped columns {odd} got types {[design[n]['type'] for n in odd]}, expected text or skipped"
        extract_ok(root)
        rows = my.read(my_up, table.name, table.cols)
        expected = [tuple(r[i] for i in [0, *[1 + table.cols.index(c) for c in kept]]) for r in rows]
        check_everywhere(root, relation, f"{my_upstream_db}.{table.name}", kept, expected, pg_warehouse_dsn)
    finally:
        my.drop(my_up, table.name)
        remove(root)
