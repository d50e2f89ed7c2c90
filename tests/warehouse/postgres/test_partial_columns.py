"""A design may document only some of its query's columns (``partial_columns: true``), as dbt allows.

The unlisted columns keep the types the warehouse infers, the listed ones are cast to their
design type, described, and their NOT NULL and keys are checked before publishing, on both
engines; validate agrees with what a load does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import psycopg
import pytest
import yaml

from conveyor import api
from conveyor.design.models import TableDesign
from conveyor.errors import LoadError
from conveyor.validate import validate
from conveyor.validate.preflight import PreflightError
from conveyor.warehouse.base import output_select

PARTIAL = """\
name: mart.partial
kind: ctas
partial_columns: true
columns:
  - {name: total, type: "decimal(14,2)", not_null: true, description: Sum of order amounts}
  - {name: customer_id, description: The customer}
constraints:
  primary_key: [customer_id]
"""
PARTIAL_SQL = """\
SELECT c.id AS customer_id, c.name, coalesce(sum(o.amount), 0) AS total, count(o.id) AS orders
FROM shop.customers AS c
LEFT JOIN shop.orders AS o ON o.customer_id = c.id
GROUP BY c.id, c.name
"""
NULLS = """\
name: mart.nulls
kind: ctas
partial_columns: true
columns:
  - {name: maybe, not_null: true}
"""
NULLS_SQL = "SELECT id, CASE WHEN id = 1 THEN NULL ELSE id END AS maybe FROM shop.customers\n"


def _columns(root: Path, env: str, dsn: str, table: str) -> list[tuple[str, str, str | None]]:
    """(name, type, comment) of a published table's columns, in order."""
    if env == "pg":
        with psycopg.connect(dsn) as con:
            rows = con.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum) "
                "FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum",
                (table,),
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        schema, name = table.split(".")
        rows = con.execute(
            "SELECT column_name, data_type, comment FROM duckdb_columns() "
            "WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
            [schema, name],
        ).fetchall()
    return [(r[0], r[1].lower(), r[2]) for r in rows]


@pytest.mark.parametrize("env", ["local", "pg"])
def test_partial_columns_build_with_inferred_types(pg_project: Callable[..., Path], pgwh_dsn: str, env: str) -> None:
    root = pg_project(designs={"mart/partial.yaml": PARTIAL, "mart/partial.sql": PARTIAL_SQL})
    report = validate(root, warehouse=env, sources=False)
    assert [p.render() for p in report.problems if p.severity == "error"] == []
    outcome = api.run(api.open_project(root), env=env)
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    columns = _columns(root, env, pgwh_dsn, "mart.partial")
    assert [c[0] for c in columns] == ["customer_id", "name", "total", "orders"]  # the query's order
    by_name = {c[0]: c for c in columns}
    assert by_name["total"][1:] == (
        "numeric(14,2)" if env == "pg" else "decimal(14,2)",
        "Sum of order amounts",
    )
    assert by_name["customer_id"][2] == "The customer"
    assert by_name["orders"][1] == "bigint"  # inferred: count() is bigint on both


@pytest.mark.parametrize("env", ["local", "pg"])
def test_partial_columns_keep_their_checks(pg_project: Callable[..., Path], env: str) -> None:
    root = pg_project(designs={"mart/nulls.yaml": NULLS, "mart/nulls.sql": NULLS_SQL})
    outcome = api.run(api.open_project(root), env=env)
    assert outcome.build is not None and not outcome.build.published
    assert "NULL" in outcome.build.errors["mart.nulls"] and "maybe" in outcome.build.errors["mart.nulls"]


@pytest.mark.parametrize("env", ["local", "pg"])
def test_a_listed_column_the_query_lacks_is_an_error(pg_project: Callable[..., Path], env: str) -> None:
    wrong = PARTIAL.replace("name: customer_id,", "name: customer,").replace("[customer_id]", "[customer]")
    root = pg_project(designs={"mart/partial.yaml": wrong, "mart/partial.sql": PARTIAL_SQL})
    report = validate(root, warehouse=env, sources=False)
    found = {(p.code, p.location.line if p.location else None) for p in report.problems if p.severity == "error"}
    assert ("output-column-missing", 6) in found, [p.render() for p in report.problems]
    with pytest.raises(PreflightError, match=r'partial.yaml:6: the design of "mart.partial" lists column "customer"'):
        api.load(api.open_project(root), env=env, skip_copy=True)
    # a query the preflight cannot read names from is checked by the warehouse, before it creates anything
    design = TableDesign.model_validate(yaml.safe_load(wrong))
    with pytest.raises(LoadError, match=r"lists \(customer\), but its SQL does not produce it; it produces \(c"):
        output_select(design, "SELECT * FROM t", ["customer_id", "name", "total", "orders"], "postgres")
    shaped = output_select(
        TableDesign.model_validate(yaml.safe_load(PARTIAL)), "SELECT 1", ["customer_id", "total"], "postgres"
    )
    cast = 'CAST(shaped."total" AS decimal(14,2)) AS "total"'
    assert shaped == f'SELECT shaped."customer_id", {cast}\nFROM (\nSELECT 1\n) AS shaped'


def test_extra_columns_still_fail_without_partial_columns(pg_project: Callable[..., Path]) -> None:
    root = pg_project(
        designs={"mart/partial.yaml": PARTIAL.replace("partial_columns: true\n", ""), "mart/partial.sql": PARTIAL_SQL}
    )
    report = validate(root, warehouse="local", sources=False)
    extra = [p for p in report.problems if p.code == "output-column-extra"]
    assert sorted(p.message.split('"')[3] for p in extra) == ["name", "orders"]
    assert all("partial_columns: true" in (p.hint or "") for p in extra)


def test_a_source_table_cannot_be_partial(pg_project: Callable[..., Path]) -> None:
    root = pg_project()
    path = root / "schemas/shop/orders.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "partial_columns: true\n", encoding="utf-8")
    report = validate(root, warehouse="local", sources=False)
    assert [p.code for p in report.problems if p.severity == "error"] == ["source-partial-columns"]
