"""Round-trip property test, SQLite upstream: declared types and the values SQLite stores for them.

Each example writes a table into a fresh SQLite file, bootstraps, extracts (one read or 2..4
partitions of ``id``), loads DuckDB and PostgreSQL, and compares with sqlite3's read.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conveyor import api

from . import lite
from .conftest import profile, scratch_dir
from .harness import (
    Col,
    Table,
    bootstrap_one,
    check_everywhere,
    dq,
    edit_design,
    extract_ok,
    remove,
    tables,
    write_project,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def round_trip(warehouse: str, table: Table, partitions: int | None, pick: int = 0) -> None:
    root = write_project(scratch_dir("lite"), "sqlite", "upstream.db", ["main.*"], warehouse)
    conn = lite.connect(str(root / "upstream.db"))
    try:
        lite.create(conn, table)
        relation = bootstrap_one(root)
        if partitions:
            edit_design(
                root, relation, lambda d: d.setdefault("extract", {}).update(split_by="id", partitions=partitions)
            )
        extract_ok(root)
        expected = lite.read(conn, table.name, table.cols)
        check_everywhere(root, relation, f"main.{table.name}", table.cols, expected, warehouse)
    finally:
        conn.close()
        remove(root)


@profile(examples=12)
@given(
    table=tables(lite.VOCAB, id_range=(-(2**63), 2**63 - 1)),
    partitions=st.sampled_from([None, None, 2, 3, 4]),
    pick=st.integers(0, 7),
)
def test_sqlite_tables_round_trip_exactly(
    pg_warehouse_dsn: str, table: Table, partitions: int | None, pick: int
) -> None:
    round_trip(pg_warehouse_dsn, table, partitions, pick)


@profile(examples=1)
@example(table=Table("t_empty", [Col("c0", lite.VOCAB[0], False)], [], []), partitions=2)
@given(table=tables(lite.VOCAB[:3], max_rows=0), partitions=st.integers(2, 4))
def test_sqlite_empty_table_extracts_in_partitions(pg_warehouse_dsn: str, table: Table, partitions: int) -> None:
    """Found by the property above: split_by id with partitions: 2 on an empty table failed the extract with
    "TypeError: 'NoneType' object is not subscriptable" (SqliteSource.quantiles read fetchone()[0] of no row).
    """
    round_trip(pg_warehouse_dsn, table, partitions)


TEXT = lite.VOCAB[6]


@profile(examples=3)
@example(table=Table("t_missing", [Col("a", TEXT, False), Col("gone", TEXT, False)], [1], [["x", "y"]]))
@given(table=tables(lite.VOCAB[:8], max_cols=3, max_rows=3))
def test_sqlite_design_column_missing_upstream_fails_the_extract(pg_warehouse_dsn: str, table: Table) -> None:
    """Drop the last column upstream after bootstrap: the extract must fail naming it, never load values."""
    root = write_project(scratch_dir("litegone"), "sqlite", "upstream.db", ["main.*"], pg_warehouse_dsn)
    conn = lite.connect(str(root / "upstream.db"))
    try:
        lite.create(conn, table)
        bootstrap_one(root)
        gone = table.cols[-1].name
        rest = ", ".join(["id", *(dq(c.name) for c in table.cols[:-1])]) if len(table.cols) > 1 else "id"
        conn.executescript(
            f"CREATE TABLE keep AS SELECT {rest} FROM {dq(table.name)}; DROP TABLE {dq(table.name)};"
            f"ALTER TABLE keep RENAME TO {dq(table.name)};"
        )
        outcome = api.extract_tables(api.open_project(root))
        assert outcome.extract is not None
        assert not outcome.ok, "the extract succeeded although a design column no longer exists upstream"
        error = outcome.extract.failed[0].error or ""
        assert gone in error, error
    finally:
        conn.close()
        remove(root)


@profile(examples=1)
@example(table=Table("t_json_number", [Col("j", lite.JSON_NUMBER, False)], [1], [["0"]]))
@given(table=tables([lite.JSON_NUMBER], max_cols=1, max_rows=3))
def test_sqlite_json_numbers_round_trip(pg_warehouse_dsn: str, table: Table) -> None:
    """Found by the property above: the declared type JSON has NUMERIC affinity, so SQLite keeps the document
    '0' as the integer 0 and the extract fails with "0 is stored as int, not text", although 0 is valid JSON.
    (The reference here is the number's text as sqlite3 reads it: '0', '1.5', '-12', '1000.0' for '1e3'.)
    """
    round_trip(pg_warehouse_dsn, table, None)


def test_sqlite_decimal_out_of_range_names_the_value(pg_warehouse_dsn: str) -> None:
    """Found by the property above: SQLite keeps '99999999999999.9999' in a DECIMAL(18,4) column as the integer
    10**14, which does not fit decimal(18,4). The extract rightly fails, and must say so with the value (it used
    to say pyarrow's "Decimal type with precision 15 does not fit into precision inferred from first array element").
    """
    root = write_project(scratch_dir("litedec"), "sqlite", "upstream.db", ["main.*"], pg_warehouse_dsn)
    conn = lite.connect(str(root / "upstream.db"))
    try:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, c DECIMAL(18,4))")
        conn.execute("INSERT INTO t VALUES (1, '99999999999999.9999')")
        assert conn.execute("SELECT c FROM t").fetchall() == [(10**14,)]  # what SQLite made of it
        bootstrap_one(root)
        outcome = api.extract_tables(api.open_project(root))
        assert outcome.extract is not None and not outcome.ok
        error = outcome.extract.failed[0].error or ""
        assert "100000000000000" in error and "inferred from first array element" not in error, error
    finally:
        conn.close()
        remove(root)
