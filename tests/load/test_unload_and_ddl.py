"""unload, the lake source that reads it back, show ddl and --skip-copy (DuckDB)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from conveyor import api
from conveyor.lake.lake import Lake
from conveyor.validate.preflight import PreflightError


def _rows(warehouse: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql).fetchall()


def test_unload_writes_committed_extracts_with_exact_types(project_dir: Path) -> None:
    project = api.open_project(project_dir)
    assert api.run(project).ok
    outcome = api.unload(project, ["shop.customers", "mart.report"])
    assert outcome.ok
    lake = Lake(project.lake_location)
    manifest = lake.latest("unload_dev", "shop.customers")
    assert manifest is not None and manifest.job_type == "unload"
    table = manifest.dataset().to_table()
    warehouse = project_dir / "warehouse.duckdb"
    expected = _rows(warehouse, "SELECT * FROM shop.customers ORDER BY 1")
    assert manifest.rows == len(expected) == table.num_rows
    assert [tuple(r.values()) for r in table.sort_by(table.schema.names[0]).to_pylist()] == expected
    # booleans stay booleans (DuckDB's lossless export says arrow.bool8) and decimals stay decimals
    types = {f.name: str(f.type) for f in manifest.arrow_schema}
    assert "bool" in types.values() and any(t.startswith("decimal128") for t in types.values())
    # views unload too
    assert lake.latest("unload_dev", "mart.report") is not None


def test_another_project_reads_an_unload_as_a_lake_source(project_dir: Path, tmp_path: Path) -> None:
    producer = api.open_project(project_dir)
    assert api.run(producer).ok
    assert api.unload(producer, ["mart"], source_name="published").ok
    consumer = tmp_path / "consumer"
    (consumer / "schemas" / "marts").mkdir(parents=True)
    (consumer / "conveyor.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: consumer
            sources:
              marts:
                type: lake
                dsn: {producer.lake_location}/data/published
            environments:
              dev: {{type: duckdb, dsn: consumer.duckdb}}
            """
        )
    )
    from conveyor.bootstrap import bootstrap

    report = bootstrap(api.open_project(consumer))
    assert report.ok and report.counts().get("created", 0) >= 2
    outcome = api.run(api.open_project(consumer))
    assert outcome.ok
    produced = _rows(project_dir / "warehouse.duckdb", "SELECT * FROM mart.report ORDER BY ALL")
    consumed = _rows(consumer / "consumer.duckdb", "SELECT * FROM marts.report ORDER BY ALL")
    assert consumed == produced and produced


def test_unload_of_an_unpublished_relation_is_bad_input(project_dir: Path, cli: Callable[..., object]) -> None:
    result = cli("unload", "mart.report", cwd=project_dir)
    assert result.code == 2 and "not published" in result.stderr  # type: ignore[attr-defined]
    assert not (project_dir / "lake").exists()


def test_show_ddl_prints_tables_with_keys_and_views_qualified(project_dir: Path, cli: Callable[..., object]) -> None:
    result = cli("show", "ddl", "+mart.report", cwd=project_dir)
    assert result.code == 0  # type: ignore[attr-defined]
    text = result.stdout  # type: ignore[attr-defined]
    assert 'CREATE TABLE "shop"."customers"' in text and "PRIMARY KEY" in text and "NOT NULL" in text
    assert 'CREATE VIEW "mart"."report" AS' in text
    # the view reads its upstream unqualified in its SQL file; the DDL names it fully
    assert '"mart"."top_customers"' in text
    assert 'CREATE TABLE "mart"."top_customers" AS' in text  # an untyped CTAS shows its query
    # the DDL runs in DuckDB as printed, in this order
    con = duckdb.connect()
    for schema in ("shop", "mart"):
        con.execute(f"CREATE SCHEMA {schema}")
    for statement in text.split(";\n"):
        if statement.strip():
            con.execute(statement)
    assert con.execute("SELECT count(*) FROM mart.report").fetchone() == (0,)


def test_skip_copy_creates_every_relation_empty(project_dir: Path) -> None:
    project = api.open_project(project_dir)
    # no extract at all: skip-copy needs no lake
    outcome = api.load(project, skip_copy=True)
    assert outcome.ok and outcome.build is not None and outcome.build.published
    warehouse = project_dir / "warehouse.duckdb"
    names = _rows(warehouse, "SELECT schema_name || '.' || table_name FROM duckdb_tables()")
    assert {n for (n,) in names} >= {"shop.customers", "shop.orders", "mart.customer_totals"}
    for (name,) in names:
        assert _rows(warehouse, f"SELECT count(*) FROM {name}") == [(0,)]
    assert _rows(warehouse, "SELECT count(*) FROM mart.report") == [(0,)]
    assert not (project_dir / "lake").exists()


def test_skip_copy_still_compiles_every_statement(project_dir: Path) -> None:
    (project_dir / "schemas/mart/top_customers.sql").write_text("SELECT no_such_column FROM customer_totals\n")
    with pytest.raises(PreflightError) as refused:  # bound before anything is written
        api.load(api.open_project(project_dir), skip_copy=True)
    assert refused.value.code == "bind-failed" and "no_such_column" in refused.value.render()
    assert not (project_dir / "warehouse.duckdb").exists()
