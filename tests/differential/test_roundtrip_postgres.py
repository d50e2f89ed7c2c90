"""Round-trip property test, PostgreSQL upstream: random tables over the whole mapped vocabulary.

Each example creates a table in PostgreSQL (columns drawn from :data:`pg.VOCAB`, values biased
to edges), bootstraps a design for it, extracts it (in one read or in 2..4 partitions of
``id``), loads it into DuckDB and into PostgreSQL, and compares the lake and both warehouses
value by value with what psycopg reads from the upstream table.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from . import pg
from .conftest import profile, scratch_dir
from .harness import (
    Table,
    bootstrap_one,
    check_everywhere,
    compare,
    design_file,
    dq,
    duck_rows,
    duckdb_rows,
    edit_design,
    extract_ok,
    load_ok,
    remove,
    tables,
    write_project,
)
from .kinds import Kind

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def upstream(pg_up: Any) -> Any:
    pg.setup(pg_up)
    return pg_up


def round_trip(conn: Any, dsn: str, warehouse: str, table: Table, partitions: int | None, pick: int = 0) -> None:
    pg.create(conn, table)
    root = write_project(scratch_dir("pg"), "postgres", dsn, [f"public.{table.name}"], warehouse)
    try:
        relation = bootstrap_one(root)
        if partitions:
            edit_design(
                root, relation, lambda d: d.setdefault("extract", {}).update(split_by="id", partitions=partitions)
            )
        extract_ok(root)
        expected = pg.read(conn, table.name, table.cols)
        check_everywhere(root, relation, f"public.{table.name}", table.cols, expected, warehouse)
    finally:
        pg.drop(conn, table.name)
        remove(root)


@profile(examples=12)
@given(table=tables(pg.VOCAB), partitions=st.sampled_from([None, None, 2, 3, 4]), pick=st.integers(0, 7))
def test_postgres_tables_round_trip_exactly(
    upstream: Any, pg_upstream_dsn: str, pg_warehouse_dsn: str, table: Table, partitions: int | None, pick: int
) -> None:
    round_trip(upstream, pg_upstream_dsn, pg_warehouse_dsn, table, partitions, pick)


# ------------------------------------------------------------------------------ known issue 10 items


def table_of(*cols: tuple[str, Any, bool], rows: list[list[Any]]) -> Table:
    """An explicit table for ``@example`` (names, kinds and NOT NULL flags; ids 1..n)."""
    from .harness import Col

    return Table(
        f"t_{uuid.uuid4().hex[:12]}", [Col(n, k, nn) for n, k, nn in cols], list(range(1, len(rows) + 1)), rows
    )


CHAR = next(k for k in pg.VOCAB if k.label == "char(4)")
QCHAR = Kind('"char"', '"char"', st.sampled_from(["", "a", " "]), "text", '%s::"char"')


@profile(examples=4)
@example(table=table_of(("c", QCHAR, False), rows=[[""]]))
@given(table=tables([QCHAR, pg.INTEGER], max_cols=2, max_rows=3))
def test_postgres_quoted_char_round_trips(upstream: Any, pg_upstream_dsn: str, pg_warehouse_dsn: str, table: Table):
    round_trip(upstream, pg_upstream_dsn, pg_warehouse_dsn, table, None)


@profile(examples=4)
@example(table=table_of(("c", CHAR, True), rows=[["ab"]]))
@given(table=tables([CHAR], max_cols=1, max_rows=4))
def test_postgres_char_equality_matches_upstream(
    upstream: Any, pg_upstream_dsn: str, pg_warehouse_dsn: str, table: Table
) -> None:
    """``WHERE c = 'v'`` finds the same rows upstream and in both warehouses, for every value v of a char(n)."""
    pg.create(upstream, table)
    root = write_project(scratch_dir("pgchar"), "postgres", pg_upstream_dsn, [f"public.{table.name}"], pg_warehouse_dsn)
    try:
        relation = bootstrap_one(root)
        extract_ok(root)
        load_ok(root, "duck")
        load_ok(root, "pg")
        column = dq(table.cols[0].name)
        schema, name = relation.split(".")
        for value in {v.rstrip(" ") for (v,) in table.rows if v is not None}:
            literal = "'" + value.replace("'", "''") + "'"
            where = f"WHERE {column} = {literal} ORDER BY id"
            want = upstream.execute(f"SELECT id FROM {dq(table.name)} {where}".encode()).fetchall()
            assert want, f"upstream finds no row for {literal}"
            got_duck = duck_rows(str(root / "wh.duckdb"), f"SELECT id FROM {dq(schema)}.{dq(name)} {where}")
            assert got_duck == want, f"DuckDB: {column} = {literal} finds {got_duck}, upstream {want}"
            got_pg = pg_rows_sql(pg_warehouse_dsn, f"SELECT id FROM {dq(schema)}.{dq(name)} {where}")
            assert got_pg == want, f"PostgreSQL warehouse: {column} = {literal} finds {got_pg}, upstream {want}"
    finally:
        pg.drop(upstream, table.name)
        remove(root)


def pg_rows_sql(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql.encode()).fetchall()


@profile(examples=6)
@example(table=table_of(("iv", pg.UNMAPPED[1], False), rows=[["1 mon"]]), mapped=pg.INTEGER)
@given(table=tables(pg.UNMAPPED, max_cols=2, max_rows=3), mapped=st.sampled_from(pg.VOCAB[:3]))
def test_postgres_unmapped_types_keep_the_table(
    upstream: Any, pg_upstream_dsn: str, pg_warehouse_dsn: str, table: Table, mapped: Kind
) -> None:
    """A table with unmapped columns still gets a design; they are read as text or skipped, the rest exactly."""
    from .harness import Col

    table.cols.append(Col("mapped", mapped, False))
    for row in table.rows:
        row.append(None)
    pg.create(upstream, table)
    root = write_project(scratch_dir("pgunm"), "postgres", pg_upstream_dsn, [f"public.{table.name}"], pg_warehouse_dsn)
    try:
        relation = bootstrap_one(root)
        design = {c["name"]: c for c in yaml.safe_load(design_file(root, relation).read_text())["columns"]}
        kept = [c for c in table.cols if not design[c.name].get("skipped")]
        unmapped = {k.label for k in pg.UNMAPPED}
        odd = [c.name for c in kept if c.kind.label in unmapped and design[c.name]["type"] != "text"]
        assert not odd, f"unmapped columns {odd} got types {[design[n]['type'] for n in odd]}, expected text or skipped"
        extract_ok(root)
        expected = [
            tuple(r[i] for i in [0, *[1 + table.cols.index(c) for c in kept]])
            for r in pg.read(upstream, table.name, table.cols)
        ]
        check_everywhere(root, relation, f"public.{table.name}", kept, expected, pg_warehouse_dsn)
    finally:
        pg.drop(upstream, table.name)
        remove(root)


@profile(examples=4)
@example(
    table=table_of(("w", pg.WIDE[1], False), rows=[[Decimal("-123456789012345678901234567890.12345678901234567890")]])
)
@given(table=tables(pg.WIDE, max_cols=2, max_rows=3))
def test_postgres_wide_numerics_load_exactly(upstream: Any, pg_upstream_dsn: str, pg_warehouse_dsn: str, table: Table):
    round_trip(upstream, pg_upstream_dsn, pg_warehouse_dsn, table, None)


@profile(examples=3)
@given(table=tables(pg.VOCAB[:12], max_cols=3, max_rows=4))
def test_postgres_two_designs_over_one_table(upstream: Any, pg_upstream_dsn: str, pg_warehouse_dsn: str, table: Table):
    """A second design reads the same upstream table with only its first column: both load what upstream holds."""
    pg.create(upstream, table)
    root = write_project(scratch_dir("pgtwo"), "postgres", pg_upstream_dsn, [f"public.{table.name}"], pg_warehouse_dsn)
    try:
        relation = bootstrap_one(root)
        doc = yaml.safe_load(design_file(root, relation).read_text())
        second = f"{relation}_narrow"
        narrow = {**doc, "name": second, "source_table": f"public.{table.name}", "columns": doc["columns"][:2]}
        design_file(root, second).write_text(yaml.safe_dump(narrow, allow_unicode=True), encoding="utf-8")
        extract_ok(root)
        expected = pg.read(upstream, table.name, table.cols)
        load_ok(root, "duck")
        compare("DuckDB warehouse", table.cols, expected, duckdb_rows(root, relation, table.cols), exact_json=True)
        narrow_rows = [r[:2] for r in expected]
        compare(
            "DuckDB warehouse (second design)", table.cols[:1], narrow_rows, duckdb_rows(root, second, table.cols[:1])
        )
    finally:
        pg.drop(upstream, table.name)
        remove(root)
