"""update, upgrade and unload on the PostgreSQL warehouse, through conveyor.api (mirrors tests/load)."""

from __future__ import annotations

import sqlite3
import textwrap
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from conveyor import api
from conveyor.bootstrap import bootstrap
from conveyor.errors import WarehouseError
from conveyor.lake.lake import Lake

from .conftest import CUSTOMERS, ORDERS
from .test_postgres import CUSTOMER_KINDS, ORDER_KINDS, normalize, pg_rows

pytestmark = pytest.mark.postgres

Sql = Callable[..., list[tuple[Any, ...]]]
ORDERS_SUM = sum(Decimal(o[2]) for o in ORDERS)

# binds (the preflight passes it), then fails in PostgreSQL on its first row, naming "nope..."
RUNTIME_FAILURE = "SELECT customer_id, CAST('nope' || name AS integer) AS name, total, version FROM customer_totals\n"


def _add_orders(root: Path, rows: list[tuple[object, ...]]) -> None:
    with sqlite3.connect(root / "upstream.db") as con:
        con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, 1)", rows)


def _incremental_orders(root: Path) -> None:
    design = root / "schemas/shop/orders.yaml"
    design.write_text(design.read_text() + "extract:\n  incremental: {cursor: id}\n")


def _loaded(root: Path) -> api.Project:
    project = api.open_project(root)
    outcome = api.run(project, env="pg")
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    return project


def _snapshot(sql: Sql) -> dict[str, list[tuple[Any, ...]]]:
    tables = ("shop.customers", "shop.orders", "mart.customer_totals", "mart.top_customers", "mart.report")
    return {t: sorted(sql(f"SELECT * FROM {t}"), key=repr) for t in tables}


# ---------------------------------------------------------------------------- update


def test_update_merges_an_increment_by_key_and_keeps_grants_and_views(
    pg_project: Callable[..., Path], sql: Sql, roles: Callable[[str], str]
) -> None:
    reader = roles("reader")
    root = pg_project()
    _incremental_orders(root)
    project = _loaded(root)
    sql("CREATE SCHEMA other")
    sql("CREATE VIEW other.orders_seen AS SELECT count(*) AS n FROM shop.orders")
    sql(f'GRANT SELECT ON mart.customer_totals TO "{reader}"')
    kept = "SELECT relname, oid::int FROM pg_class WHERE relname IN ('orders', 'customer_totals', 'report')"
    tables_before: dict[str, int] = dict(sql(kept))

    _add_orders(root, [(20, 2, "1.00", "2024-05-01T00:00:00Z", "new"), (21, 4, "2.50", None, None)])
    assert api.extract_tables(project, ["shop.orders"]).ok
    outcome = api.update(project, ["shop.orders"], env="pg")
    assert outcome.ok and outcome.build is not None and outcome.build.published, outcome.build
    # only the increment was merged, by key: the two new rows and (inclusive bound) the row at the watermark
    assert outcome.build.rows["shop.orders"] == 3
    assert set(outcome.build.status) == {"shop.orders", "mart.customer_totals", "mart.top_customers", "mart.report"}
    assert sql("SELECT count(*), sum(amount) FROM shop.orders") == [(len(ORDERS) + 2, ORDERS_SUM + Decimal("3.50"))]
    totals: dict[int, Decimal] = dict(sql("SELECT customer_id, total FROM mart.customer_totals"))
    assert totals[2] == Decimal("100.99") and totals[4] == Decimal("2.50")
    assert sql("SELECT count(*) FROM mart.report") == sql("SELECT count(*) FROM mart.top_customers WHERE total > 0")
    # the tables were changed in place, and the unchanged view left alone: same relations,
    # grants and the views that read them
    assert dict(sql(kept)) == tables_before
    assert sql("SELECT n FROM other.orders_seen") == [(len(ORDERS) + 2,)]
    assert sql("SELECT has_table_privilege(%s, 'mart.customer_totals', 'SELECT')", (reader,)) == [(True,)]
    assert sql("SELECT obj_description('mart.customer_totals'::regclass, 'pg_class')") == [
        ("Order totals per customer",)
    ]

    # nothing new: nothing merged
    again = api.update(project, ["shop.orders"], env="pg")
    assert again.ok and again.build is not None and again.build.rows["shop.orders"] == 0
    assert sql("SELECT count(*) FROM shop.orders") == [(len(ORDERS) + 2,)]

    # a table without incremental extracts has all its rows replaced
    with sqlite3.connect(root / "upstream.db") as con:
        con.execute("UPDATE customers SET version = 2")
    assert api.extract_tables(project, ["shop.customers"]).ok
    replaced = api.update(project, ["shop.customers"], env="pg")
    assert replaced.ok and replaced.build is not None and replaced.build.rows["shop.customers"] == len(CUSTOMERS)
    assert sql("SELECT DISTINCT version FROM shop.customers") == [(2,)]
    assert sql("SELECT DISTINCT version FROM mart.customer_totals") == [(2,)]
    assert sql("SELECT DISTINCT version FROM mart.report") == [(2,)]


def test_a_failing_update_rolls_everything_back(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    project = _loaded(root)
    before = _snapshot(sql)
    _add_orders(root, [(30, 1, "7.00", None, None)])
    assert api.extract_tables(project, ["shop.orders"]).ok
    # the source table and the first CTAS update fine, then a dependent fails: nothing may stay changed
    (root / "schemas/mart/top_customers.sql").write_text(RUNTIME_FAILURE)
    outcome = api.update(api.open_project(root), ["shop.orders"], env="pg")
    assert not outcome.ok and outcome.build is not None and not outcome.build.published
    assert outcome.build.status["shop.orders"] == "rolled back"
    assert outcome.build.status["mart.customer_totals"] == "rolled back"
    assert outcome.build.status["mart.top_customers"] == "failed"
    assert outcome.build.status["mart.report"] == "skipped"
    assert "nope" in outcome.build.errors["mart.top_customers"]
    assert _snapshot(sql) == before
    # the schema locks went with the connection: a fixed update goes through
    (root / "schemas/mart/top_customers.sql").write_text(
        "SELECT customer_id, name, total, version FROM customer_totals\n"
    )
    fixed = api.update(api.open_project(root), ["shop.orders"], env="pg")
    assert fixed.ok, fixed.build.errors if fixed.build else fixed
    assert sql("SELECT count(*) FROM shop.orders") == [(len(ORDERS) + 1,)]


def test_an_update_that_changes_columns_recreates_the_table_and_the_views_over_it(
    pg_project: Callable[..., Path], sql: Sql, roles: Callable[[str], str]
) -> None:
    reader = roles("reader")
    root = pg_project()
    project = _loaded(root)
    sql("CREATE SCHEMA other")
    sql("CREATE VIEW other.top AS SELECT customer_id, total FROM mart.top_customers")
    sql("COMMENT ON VIEW other.top IS 'the best'")
    sql(f'GRANT SELECT ON other.top, mart.top_customers TO "{reader}"')
    report_oid = sql("SELECT 'mart.report'::regclass::oid::int")
    # an untyped CTAS gets another column: it must be dropped, and what reads it recreated
    (root / "schemas/mart/top_customers.sql").write_text(
        "SELECT customer_id, name, total, version, total * 2 AS doubled FROM customer_totals WHERE total > 0\n"
    )
    outcome = api.update(api.open_project(root), ["mart.customer_totals"], env="pg")
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    assert sql("SELECT count(*) FROM mart.top_customers WHERE doubled = total * 2") == sql(
        "SELECT count(*) FROM mart.top_customers"
    )
    assert sql("SELECT count(*) FROM other.top") == sql("SELECT count(*) FROM mart.top_customers")
    assert sql("SELECT obj_description('other.top'::regclass, 'pg_class')") == [("the best",)]
    for relation in ("other.top", "mart.top_customers"):
        assert sql("SELECT has_table_privilege(%s, %s, 'SELECT')", (reader, relation)) == [(True,)]
    assert sql("SELECT count(*) FROM mart.report") == sql("SELECT count(*) FROM mart.top_customers")
    assert sql("SELECT 'mart.report'::regclass::oid::int") != report_oid  # recreated with its table
    del project


def test_an_update_that_breaks_a_view_of_another_schema_rolls_back(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    _loaded(root)
    sql("CREATE SCHEMA other")
    sql("CREATE VIEW other.versions AS SELECT customer_id, version FROM mart.top_customers")
    before = _snapshot(sql)
    # top_customers loses its version column: other.versions cannot be recreated
    (root / "schemas/mart/top_customers.sql").write_text("SELECT customer_id, name, total FROM customer_totals\n")
    (root / "schemas/mart/report.sql").write_text("SELECT name, total FROM top_customers\n")
    outcome = api.update(api.open_project(root), ["mart.customer_totals"], env="pg")
    assert not outcome.ok and outcome.build is not None and not outcome.build.published
    assert "other.versions" in (outcome.build.reason or "") + " ".join(outcome.build.errors.values())
    assert _snapshot(sql) == before
    assert sql("SELECT count(*) FROM other.versions") == [(len(before["mart.top_customers"]),)]


def test_readers_never_see_half_an_update(pg_project: Callable[..., Path], pgwh_dsn: str) -> None:
    root = pg_project()
    project = _loaded(root)
    seen: list[tuple[Any, ...]] = []
    failures: list[BaseException] = []
    stop = threading.Event()
    query = "SELECT (SELECT sum(amount) FROM shop.orders), (SELECT sum(total) FROM mart.customer_totals)"

    def read() -> None:
        try:
            with psycopg.connect(pgwh_dsn, autocommit=True) as con:
                while not stop.is_set():
                    row = con.execute(query).fetchone()
                    assert row is not None
                    seen.append(tuple(row))
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(3):
            _add_orders(root, [(40 + n, 1, f"{n + 1}.25", None, None)])
            assert api.extract_tables(project, ["shop.orders"]).ok
            outcome = api.update(project, ["shop.orders"], env="pg")
            assert outcome.ok, outcome.build.errors if outcome.build else outcome
    finally:
        stop.set()
        reader.join()
    assert not failures and seen
    # the orders total and the per-customer totals always come from the same state
    assert all(orders == totals for orders, totals in seen), [s for s in seen if s[0] != s[1]][:3]
    assert {orders for orders, _ in seen} <= {ORDERS_SUM + Decimal(x) for x in ("0", "1.25", "3.50", "6.75")}
    assert seen[-1][0] == ORDERS_SUM + Decimal("6.75")


def test_update_of_an_empty_warehouse_creates_the_relations(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    project = api.open_project(root)
    assert api.extract_tables(project).ok
    outcome = api.update(project, ["shop.customers", "shop.orders"], env="pg")
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    assert sql("SELECT count(*) FROM mart.report") == sql("SELECT count(*) FROM mart.top_customers")
    assert pg_rows(sql, "SELECT * FROM shop.orders", ORDER_KINDS)[0][0] == ORDERS[0][0]


# ---------------------------------------------------------------------------- upgrade


def test_upgrade_into_a_sandbox_schema_leaves_production_alone(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    project = _loaded(root)
    before = sorted(sql("SELECT * FROM mart.report"))
    outcome = api.upgrade(project, ["mart.top_customers"], env="pg", into_schema="sandbox")
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    assert sorted(sql("SELECT * FROM sandbox.report")) == before
    # the sandboxed view reads the sandboxed table, not production's
    definition = sql("SELECT pg_get_viewdef('sandbox.report'::regclass)")[0][0]
    assert "sandbox.top_customers" in definition.replace('"', "") or "FROM top_customers" in definition
    assert sql(
        "SELECT count(*) FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
        "WHERE r.ev_class = 'sandbox.report'::regclass AND d.refobjid = 'sandbox.top_customers'::regclass"
    ) != [(0,)]
    assert sorted(sql("SELECT * FROM mart.report")) == before
    # again: the sandbox is replaced
    assert api.upgrade(project, ["mart.top_customers"], env="pg", into_schema="sandbox").ok
    assert sorted(sql("SELECT * FROM sandbox.report")) == before


def test_upgrade_in_place_rebuilds_and_keeps_views_of_other_schemas(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    project = _loaded(root)
    sql("CREATE SCHEMA other")
    sql("CREATE VIEW other.orders_seen AS SELECT count(*) AS n FROM shop.orders")
    _add_orders(root, [(50, 3, "4.00", None, "more")])
    assert api.extract_tables(project, ["shop.orders"]).ok
    outcome = api.upgrade(project, ["shop.orders"], env="pg")
    assert outcome.ok and outcome.build is not None, outcome.build.errors if outcome.build else outcome
    assert set(outcome.build.status) == {"shop.orders", "mart.customer_totals", "mart.top_customers", "mart.report"}
    assert sql("SELECT n FROM other.orders_seen") == [(len(ORDERS) + 1,)]
    totals: dict[int, Decimal] = dict(sql("SELECT customer_id, total FROM mart.customer_totals"))
    assert totals[3] == Decimal("9.01")
    assert sql("SELECT count(*) FROM mart.report") == sql("SELECT count(*) FROM mart.top_customers")


def test_upgrade_failure_skips_dependents_and_reports(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    _loaded(root)
    (root / "schemas/mart/top_customers.sql").write_text(RUNTIME_FAILURE)
    outcome = api.upgrade(api.open_project(root), ["mart.customer_totals"], env="pg")
    assert not outcome.ok and outcome.build is not None
    assert outcome.build.status == {
        "mart.customer_totals": "succeeded",
        "mart.top_customers": "failed",
        "mart.report": "skipped",
    }
    assert "nope" in outcome.build.errors["mart.top_customers"]
    only = api.upgrade(api.open_project(root), ["mart.customer_totals"], env="pg", only_selected=True)
    assert only.ok and only.build is not None and set(only.build.status) == {"mart.customer_totals"}
    assert sql("SELECT count(*) FROM mart.customer_totals") == [(len(CUSTOMERS),)]


# ---------------------------------------------------------------------------- unload


def test_unload_writes_the_published_rows_exactly(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project()
    project = _loaded(root)
    outcome = api.unload(project, ["shop.customers", "shop.orders", "mart.customer_totals", "mart.report"], env="pg")
    assert outcome.ok, outcome
    lake = Lake(project.lake_location)
    for name, kinds in (("shop.customers", CUSTOMER_KINDS), ("shop.orders", ORDER_KINDS)):
        manifest = lake.latest("unload_pg", name)
        assert manifest is not None and manifest.job_type == "unload"
        table = manifest.dataset().to_table()
        rows = sorted(tuple(normalize(v, k) for v, k in zip(r.values(), kinds, strict=True)) for r in table.to_pylist())
        assert rows == pg_rows(sql, f"SELECT * FROM {name}", kinds)
        # the same Arrow types as the extract it was loaded from, and the same values
        extract = lake.latest("shop", name)
        assert extract is not None
        assert [f.type for f in manifest.arrow_schema] == [f.type for f in extract.arrow_schema]
        original = extract.dataset().to_table().sort_by("id")
        unloaded = table.cast(original.schema).sort_by("id")
        # jsonb keeps the value, not the text (it orders keys): compare json parsed, the rest bit for bit
        exact = [n for n in original.schema.names if n != "profile"]
        assert unloaded.select(exact).equals(original.select(exact))
        if "profile" in original.schema.names:
            assert [normalize(v, "json") for v in unloaded["profile"].to_pylist()] == [
                normalize(v, "json") for v in original["profile"].to_pylist()
            ]
    types = {f.name: f.type for f in lake.latest("unload_pg", "shop.customers").arrow_schema}  # type: ignore[union-attr]
    assert types["balance"] == pa.decimal128(12, 2) and types["created_at"] == pa.timestamp("us", "UTC")
    assert types["token"] == pa.uuid() and types["profile"] == pa.json_() and types["avatar"] == pa.binary()
    assert types["active"] == pa.bool_()
    totals = lake.latest("unload_pg", "mart.customer_totals")
    assert totals is not None and totals.arrow_schema.field("total").type == pa.decimal128(14, 2)
    report = lake.latest("unload_pg", "mart.report")  # views unload too
    assert report is not None
    assert sorted(tuple(r.values()) for r in report.dataset().to_table().to_pylist()) == sorted(
        sql("SELECT * FROM mart.report")
    )


def test_another_project_reads_an_unload_as_a_lake_source(
    pg_project: Callable[..., Path], sql: Sql, tmp_path: Path
) -> None:
    root = pg_project()
    producer = _loaded(root)
    assert api.unload(producer, ["mart"], env="pg", source_name="published").ok
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
              pg: {{type: postgres, dsn: "${{PGWH_DSN}}"}}
            """
        )
    )
    report = bootstrap(api.open_project(consumer))
    assert report.ok and report.counts().get("created", 0) >= 2
    outcome = api.run(api.open_project(consumer))
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    for table in ("customer_totals", "top_customers", "report"):
        produced = sorted(sql(f"SELECT * FROM mart.{table}"))
        assert produced and sorted(sql(f"SELECT * FROM marts.{table}")) == produced
    columns = (
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'customer_totals' ORDER BY ordinal_position"
    )
    assert sql(columns, ("marts",)) == sql(columns, ("mart",))


def test_unload_of_an_unpublished_relation_is_refused(pg_project: Callable[..., Path], pgwh_dsn: str) -> None:
    root = pg_project()
    warehouse = api.open_environment(api.open_project(root), "pg")
    with pytest.raises(WarehouseError, match="not published"), warehouse.read_relation("mart.report"):
        pass


def test_a_load_during_an_update_of_the_same_schema_is_refused(pg_project: Callable[..., Path]) -> None:
    root = pg_project()
    project = _loaded(root)
    warehouse = api.open_environment(project, "pg")
    tx = warehouse.transaction(run_id="held", atomic=True)
    try:
        tx.ensure_schema("mart")  # takes the schema's lock until commit or rollback
        with pytest.raises(WarehouseError, match=r'another load into schema "mart"'):
            api.load(project, ["mart"], env="pg")
    finally:
        tx.abort()
    assert api.load(project, ["mart"], env="pg").ok
