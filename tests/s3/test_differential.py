"""Differential: a lake on S3 and a lake in a folder give the same lake contents and identical
warehouses, on generated tables from PostgreSQL and MariaDB.

Two checks, both on hypothesis-generated tables (columns over each engine's mapped
vocabulary, values biased to edges: NULLs, non-ASCII text, extreme decimals, zoned
timestamps with microseconds; bounded examples):

* the round trip of tests/differential with its lake on S3: the committed parts, the
  DuckDB warehouse and the PostgreSQL warehouse each equal the upstream driver's read;
* one upstream table, two projects that differ only in ``lake.path`` (a folder, a bucket):
  a full extract, then an increment (new rows, and the re-read row at the watermark merged
  by key), applied by ``update`` to DuckDB and by ``load`` (the whole chain) to PostgreSQL.
  Both warehouses must be identical row by row, with exact values and exact column types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from differential import my, pg
from differential.conftest import profile, scratch_dir
from differential.harness import (
    Table,
    bootstrap_one,
    dq,
    duck_rows,
    edit_design,
    extract_ok,
    load_ok,
    remove,
    select_list,
    tables,
    update_ok,
    write_project,
)
from differential.test_roundtrip_mysql import round_trip as my_round_trip
from differential.test_roundtrip_postgres import round_trip as pg_round_trip
from differential.test_roundtrip_postgres import upstream  # noqa: F401 - the fixture (PostgreSQL's shared types)
from hypothesis import given
from hypothesis import strategies as st

from conveyor import api
from conveyor.lake.lake import Lake

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.usefixtures("s3_lake")]

Rows = list[tuple[Any, ...]]


@profile(examples=5)
@given(table=tables(pg.VOCAB, max_cols=4, max_rows=5), partitions=st.sampled_from([None, 2]))
def test_postgres_tables_round_trip_through_an_s3_lake(
    upstream: Any,  # noqa: F811 - the fixture imported above
    pg_upstream_dsn: str,
    pg_warehouse_dsn: str,
    table: Table,
    partitions: int | None,
) -> None:
    pg_round_trip(upstream, pg_upstream_dsn, pg_warehouse_dsn, table, partitions)


@pytest.mark.mysql
@profile(examples=5)
@given(table=tables(my.VOCAB, max_cols=4, max_rows=5), partitions=st.sampled_from([None, 2]))
def test_mariadb_tables_round_trip_through_an_s3_lake(
    my_up: Any, my_upstream_db: str, pg_warehouse_dsn: str, table: Table, partitions: int | None
) -> None:
    my_round_trip(my_up, my_upstream_db, pg_warehouse_dsn, table, partitions)


# ------------------------------------------------------------------------------ local lake == S3 lake


def exact(rows: Rows) -> list[tuple[str, ...]]:
    """Rows with every value as its type and repr: 1 == 1.0 == True and Decimal('1.0') == 1 no longer pass."""
    return [tuple(f"{type(v).__name__}:{v!r}" for v in row) for row in rows]


def duck_snapshot(root: Path, relation: str, table: Table) -> tuple[Rows, Rows]:
    schema, name = relation.split(".")
    where = str(root / "wh.duckdb")
    types = duck_rows(
        where,
        "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
        f"WHERE schema_name = '{schema}' AND table_name = '{name}' ORDER BY column_index",
    )
    rows = duck_rows(where, f"SELECT {select_list(table.cols, 'duckdb')} FROM {dq(schema)}.{dq(name)} ORDER BY id")
    return types, rows


def pg_snapshot(dsn: str, relation: str, table: Table) -> tuple[Rows, Rows]:
    schema, name = relation.split(".")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        types = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (f"{dq(schema)}.{dq(name)}",),
        ).fetchall()
        sql = f"SELECT {select_list(table.cols, 'postgres')}, t::text FROM {dq(schema)}.{dq(name)} t ORDER BY id"
        return types, conn.execute(sql.encode()).fetchall()


class Engine:
    def __init__(self, name: str, conn: Any, dsn: str, schema: str):
        self.name, self.conn, self.dsn, self.schema = name, conn, dsn, schema
        self.module = pg if name == "postgres" else my


def same_warehouses(engine: Engine, warehouse: str, table: Table, more: list[list[Any]]) -> None:
    engine.module.create(engine.conn, table)
    roots = {
        "s3": write_project(scratch_dir("s3"), engine.name, engine.dsn, [f"{engine.schema}.{table.name}"], warehouse),
        "local": write_project(
            scratch_dir("local"), engine.name, engine.dsn, [f"{engine.schema}.{table.name}"], warehouse
        ),
    }
    settings = roots["local"] / "conveyor.yaml"
    doc = yaml.safe_load(settings.read_text(encoding="utf-8"))
    doc["lake"]["path"] = "lake"
    settings.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    try:
        relations = {kind: bootstrap_one(root) for kind, root in roots.items()}
        assert relations["s3"] == relations["local"]
        relation = relations["s3"]
        for root in roots.values():
            edit_design(root, relation, lambda d: d.setdefault("extract", {}).update(incremental={"cursor": "id"}))
            extract_ok(root)
            load_ok(root, "duck")
        s3_lake = Lake(api.open_project(roots["s3"]).lake_location)
        assert s3_lake.where.startswith("s3://") and s3_lake.latest("up", relation) is not None
        assert not (roots["s3"] / "lake").exists()
        assert duck_snapshot(roots["s3"], relation, table) == duck_snapshot(roots["local"], relation, table)

        top = max(table.ids, default=0)
        engine.module.insert(engine.conn, table.name, table.cols, [(top + 1 + i, r) for i, r in enumerate(more)])
        snapshots: dict[str, Any] = {}
        for kind, root in roots.items():
            extract_ok(root)  # an increment: the rows above the watermark, and the one at it again
            update_ok(root, "duck")
            load_ok(root, "pg")  # the whole chain, merged by key
            types, rows = duck_snapshot(root, relation, table)
            snapshots[kind] = (types, exact(rows), pg_snapshot(warehouse, relation, table))
        assert snapshots["s3"] == snapshots["local"]
        expected = engine.module.read(engine.conn, table.name, table.cols)
        assert [r[0] for r in snapshots["s3"][2][1]] == [r[0] for r in expected]  # every upstream row, once
    finally:
        engine.module.drop(engine.conn, table.name)
        for root in roots.values():
            remove(root)


def more_rows(table: st.SearchStrategy[Table]) -> st.SearchStrategy[tuple[Table, list[list[Any]]]]:
    """A table and 0..3 further rows of its columns, inserted after the first extract."""

    @st.composite
    def both(draw: st.DrawFn) -> tuple[Table, list[list[Any]]]:
        drawn = draw(table)
        values = [c.kind.values if c.not_null else st.none() | c.kind.values for c in drawn.cols]
        return drawn, [[draw(v) for v in values] for _ in range(draw(st.integers(0, 3)))]

    return both()


@profile(examples=4)
@given(example=more_rows(tables(pg.VOCAB, max_cols=4, max_rows=4, id_range=(0, 1000))))
def test_postgres_upstream_gives_the_same_warehouses_with_a_local_and_an_s3_lake(
    upstream: Any,  # noqa: F811 - the fixture imported above
    pg_upstream_dsn: str,
    pg_warehouse_dsn: str,
    example: tuple[Table, list[list[Any]]],
) -> None:
    table, more = example
    same_warehouses(Engine("postgres", upstream, pg_upstream_dsn, "public"), pg_warehouse_dsn, table, more)


@pytest.mark.mysql
@profile(examples=4)
@given(example=more_rows(tables(my.VOCAB, max_cols=4, max_rows=4, id_range=(0, 1000))))
def test_mariadb_upstream_gives_the_same_warehouses_with_a_local_and_an_s3_lake(
    my_up: Any, my_upstream_db: str, pg_warehouse_dsn: str, example: tuple[Table, list[list[Any]]]
) -> None:
    table, more = example
    dsn = f"mysql://root@127.0.0.1:3306/{my_upstream_db}"
    same_warehouses(Engine("mysql", my_up, dsn, my_upstream_db), pg_warehouse_dsn, table, more)
