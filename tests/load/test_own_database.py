"""Names qualified with the warehouse's own database (``"db"."schema"."table"``, as ``dbt compile`` writes them).

They mean the project's relations: a dependency edge, and at build time the database part is
replaced by what the build reads. Other databases stay outside the project.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from conveyor import api
from conveyor.config.settings import EnvironmentConfig

# the test project's warehouse is warehouse.duckdb: DuckDB calls its catalog "warehouse"
QUALIFIED = {
    "dia/counted.yaml": "name: dia.counted\nkind: ctas\n",
    "dia/counted.sql": 'SELECT count(*) AS n, sum("warehouse"."shop"."orders".amount) AS total\n'
    'FROM "warehouse"."shop"."orders"\n',
    "dia/joined.yaml": "name: dia.joined\nkind: view\n",
    "dia/joined.sql": "SELECT c.n, x.id FROM WAREHOUSE.dia.counted AS c, warehouse.shop.orders AS x\n",
}


def test_names_with_the_own_database_are_dependencies_and_read_the_new_build(
    make_project: Callable[..., Path],
) -> None:
    root = make_project(designs=QUALIFIED)
    project = api.open_project(root)
    assert project.relations["dia.counted"].dependencies == ["shop.orders"]
    assert project.relations["dia.joined"].dependencies == ["dia.counted", "shop.orders"]
    assert project.relations["dia.counted"].external == []
    assert api.run(project).ok
    with sqlite3.connect(root / "upstream.db") as con:
        con.execute("INSERT INTO orders VALUES (99, 1, 1000, NULL)")
    outcome = api.run(project)
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT n FROM dia.counted").fetchall() == [(6,)]
        assert con.execute("SELECT DISTINCT n FROM dia.joined").fetchall() == [(6,)]


def test_other_databases_stay_outside_the_project(make_project: Callable[..., Path]) -> None:
    root = make_project(
        designs={"dia/other.yaml": "name: dia.other\nkind: ctas\n", "dia/other.sql": "SELECT * FROM lake.shop.orders\n"}
    )
    relation = api.open_project(root).relations["dia.other"]
    assert relation.dependencies == [] and relation.external == ["lake.shop.orders"]


@pytest.mark.parametrize(
    ("kind", "dsn", "expected"),
    [
        ("duckdb", "warehouse/prod.duckdb", "prod"),
        ("duckdb", "duckdb:///data/.hidden.v2.duckdb", "hidden"),
        ("duckdb", "${WAREHOUSE_FILE}", None),
        ("postgres", "postgresql://etl:${PASSWORD}@db.example:5432/analytics?sslmode=require", "analytics"),
        ("postgres", "postgresql+psycopg://etl@db.example/an%20alytics", "an alytics"),
        ("postgres", "host=db dbname='my db' user=etl", "my db"),
        ("postgres", "postgresql://etl@db.example", "etl"),
        ("postgres", "${WAREHOUSE_DSN}", None),
        ("redshift", "postgresql://etl@cluster:5439/dev?dbname=${DB}", None),
    ],
)
def test_the_database_name_comes_from_the_dsn_without_secrets(kind: str, dsn: str, expected: str | None) -> None:
    assert EnvironmentConfig.model_validate({"type": kind, "dsn": dsn}).database_name() == expected


def test_only_the_names_change_in_the_text() -> None:
    from conveyor.graph.splice import splice_tables
    from conveyor.graph.sqldeps import parse_sql

    sql = 'select "db".s.t.x, db.s.t.y /* db.s.t */ from "db"."s"."t" -- db.s.t\n'
    out = splice_tables(sql, parse_sql(sql), {"s.t": "s$staging.t"}, own_schema="s", known={"s.t"}, catalogs={"db"})
    assert out == 'select "s$staging".t.x, "s$staging".t.y /* db.s.t */ from "s$staging"."t" -- db.s.t\n'


def test_plain_validate_binds_names_with_the_own_database(make_project: Callable[..., Path]) -> None:
    """The in-memory binder takes the warehouse's database name, so such names bind as a load binds them."""
    from conveyor.validate import validate

    designs = {**QUALIFIED, "dia/typo.yaml": "name: dia.typo\nkind: view\n"}
    designs["dia/typo.sql"] = "SELECT amountt FROM warehouse.shop.orders\n"
    report = validate(make_project(designs=designs), sources=False)
    found = [(p.code, str(p.location)) for p in report.problems if p.severity == "error"]
    assert found == [("bind-failed", "schemas/dia/typo.sql:1:8")], [p.render() for p in report.problems]
