"""The bundled example, on DuckDB and on a PostgreSQL variant: load, update, upgrade and unload."""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
from pathlib import Path

import duckdb
import psycopg
import pytest

from conveyor import api
from conveyor.lake.lake import Lake

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "shop"
TABLES = ["shop.orders", "shop.order_items", "analytics.orders_enriched", "analytics.customer_lifetime"]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _example(tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("lake", "warehouse", ".conveyor", "upstream"))
    spec = importlib.util.spec_from_file_location("shop_generate", root / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(root / "upstream" / "shop.db", scale=0.02)
    settings = (root / "conveyor.yaml").read_text()
    variant = "  postgres_variant:\n    type: postgres\n    dsn: ${EXAMPLE_PG}\n"
    (root / "conveyor.yaml").write_text(settings.replace("environments:\n", "environments:\n" + variant, 1))
    monkeypatch.setenv("EXAMPLE_PG", pg_dsn)
    return root


def _counts_duckdb(root: Path) -> dict[str, int]:
    with duckdb.connect(str(root / "warehouse" / "shop_development.duckdb"), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


def _counts_pg(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}".encode()).fetchone()[0] for t in TABLES}  # type: ignore[index]


def test_the_example_goes_through_load_update_upgrade_and_unload_on_both_warehouses(
    tmp_path: Path, pgwh_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _example(tmp_path, pgwh_dsn, monkeypatch)
    project = api.open_project(root)
    assert api.run(project).ok  # extract, then load development (DuckDB)
    assert api.load(project, env="postgres_variant").ok
    assert _counts_duckdb(root) == _counts_pg(pgwh_dsn)

    # update: new upstream orders reach both warehouses, with their dependents
    with sqlite3.connect(root / "upstream" / "shop.db") as con:
        top = con.execute("SELECT max(order_id), min(customer_id) FROM orders").fetchone()
        con.execute(
            "INSERT INTO orders (order_id, customer_id, status, ordered_at) VALUES (?, ?, 'placed', ?)",
            (top[0] + 1, top[1], "2025-06-30T12:00:00.123456+02:00"),
        )
        # an order counts once it has a line (orders_enriched joins the line totals)
        item = con.execute("SELECT max(order_item_id), min(product_id) FROM order_items").fetchone()
        con.execute(
            "INSERT INTO order_items (order_item_id, order_id, product_id, quantity, unit_price) "
            "VALUES (?, ?, ?, 2, ?)",
            (item[0] + 1, top[0] + 1, item[1], 12.5),
        )
    assert api.extract_tables(project, ["shop.orders", "shop.order_items"]).ok
    before = _counts_pg(pgwh_dsn)
    for env in ("development", "postgres_variant"):
        outcome = api.update(project, ["shop.orders", "shop.order_items"], env=env)
        assert outcome.ok, outcome.build.errors if outcome.build else outcome
    after = _counts_pg(pgwh_dsn)
    assert after["shop.orders"] == before["shop.orders"] + 1
    assert after["shop.order_items"] == before["shop.order_items"] + 1
    assert after["analytics.orders_enriched"] == before["analytics.orders_enriched"] + 1
    assert _counts_duckdb(root) == after

    # upgrade into a sandbox, on both
    for env in ("development", "postgres_variant"):
        assert api.upgrade(project, ["marts.top_customers"], env=env, into_schema="sandbox").ok

    # unload from both: the lake holds exactly the published rows
    lake = Lake(root / "lake")
    for env in ("development", "postgres_variant"):
        assert api.unload(project, ["analytics.customer_lifetime"], env=env).ok
        manifest = lake.latest(f"unload_{env}", "analytics.customer_lifetime")
        assert manifest is not None and manifest.rows == after["analytics.customer_lifetime"]
