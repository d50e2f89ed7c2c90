"""Loading some schemas on DuckDB while the build reads views of the schemas it keeps (dbt's layout).

``staging`` holds views over the source tables, ``marts`` tables over ``staging``, and
``reporting`` views over ``marts``. ``conveyor load marts`` rebuilds only ``marts``: the
build must read the kept ``staging`` views, and the kept ``reporting`` views must read the
new ``marts`` tables once published. ``marts.top`` even reads ``marts`` through a kept
view, which can only be created once the table it reads is built.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import duckdb

from conveyor import api

LAYOUT: dict[str, str | None] = {
    "staging/stg_customers.yaml": "name: staging.stg_customers\nkind: view\n",
    "staging/stg_customers.sql": "SELECT id AS customer_id, name FROM shop.customers\n",
    "staging/stg_orders.yaml": "name: staging.stg_orders\nkind: view\n",
    "staging/stg_orders.sql": "SELECT id AS order_id, customer_id, amount FROM shop.orders\n",
    "marts/revenue.yaml": "name: marts.revenue\nkind: ctas\n",
    "marts/revenue.sql": """\
        SELECT c.customer_id, c.name, coalesce(sum(o.amount), 0) AS revenue, count(o.order_id) AS orders
        FROM staging.stg_customers AS c
        LEFT JOIN staging.stg_orders AS o ON o.customer_id = c.customer_id
        GROUP BY 1, 2
        """,
    "reporting/big.yaml": "name: reporting.big\nkind: view\n",
    "reporting/big.sql": "SELECT customer_id, revenue, orders FROM marts.revenue WHERE orders > 0\n",
    "marts/top.yaml": "name: marts.top\nkind: ctas\n",
    "marts/top.sql": "SELECT max(orders) AS most FROM reporting.big\n",
}


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_load_one_schema_reads_the_views_of_the_kept_schemas(make_project: Callable[..., Path]) -> None:
    root = make_project(designs=LAYOUT)
    warehouse = root / "warehouse.duckdb"
    project = api.open_project(root)
    assert api.run(project).ok
    assert _rows(warehouse, "SELECT most FROM marts.top") == [(2,)]
    with sqlite3.connect(root / "upstream.db") as con:
        con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", [(20, 1, 1.5, None), (21, 1, 2.5, None)])
    assert api.extract_tables(project, ["shop.orders"]).ok
    assert api.load(project, ["shop"]).ok  # the new orders reach the kept staging views
    outcome = api.load(project, ["marts"])
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    assert outcome.build is not None and set(outcome.build.status) == {"marts.revenue", "marts.top"}
    # marts were built from the staging views, and reporting reads the new marts
    assert _rows(warehouse, "SELECT orders FROM marts.revenue WHERE customer_id = 1") == [(4,)]
    assert _rows(warehouse, "SELECT orders FROM reporting.big WHERE customer_id = 1") == [(4,)]
    assert _rows(warehouse, "SELECT most FROM marts.top") == [(4,)]
    kinds = _rows(warehouse, "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal ORDER BY ALL")
    assert [k for k in kinds if k[0] in ("staging", "reporting")] == [
        ("reporting", "big"),
        ("staging", "stg_customers"),
        ("staging", "stg_orders"),
    ]
