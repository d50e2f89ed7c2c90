"""Every table a PostgreSQL build loads or creates has planner statistics before anything reads it.

The proof is taken from inside the build: ``mart.stats_seen`` is a CTAS that reads two
source tables and a CTAS table, finds the table each name resolved to (its ``tableoid``:
the ``shop$staging`` table during a load, the published one during an update) and records
what the planner knows about it then: ``pg_class.reltuples`` (-1 for a table never
analysed, PostgreSQL 14+) and the number of its columns with ``pg_statistic`` rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor import api

from .conftest import CUSTOMERS, ORDERS

pytestmark = pytest.mark.postgres

Sql = Callable[..., list[tuple[Any, ...]]]

STATS_SEEN = {
    "mart/stats_seen.yaml": "name: mart.stats_seen\nkind: ctas\n",
    "mart/stats_seen.sql": """\
WITH seen AS (
    SELECT 'shop.orders' AS relation, (SELECT tableoid FROM shop.orders LIMIT 1) AS table_oid,
           (SELECT count(*) FROM shop.orders) AS actual
    UNION ALL
    SELECT 'shop.customers', (SELECT tableoid FROM shop.customers LIMIT 1), (SELECT count(*) FROM shop.customers)
    UNION ALL
    SELECT 'mart.customer_totals', (SELECT tableoid FROM mart.customer_totals LIMIT 1),
           (SELECT count(*) FROM mart.customer_totals)
)
SELECT seen.relation,
       n.nspname AS built_in,
       c.reltuples::bigint AS reltuples,
       seen.actual,
       (SELECT count(*) FROM pg_catalog.pg_statistic s WHERE s.starelid = seen.table_oid) AS columns_with_statistics
FROM seen
JOIN pg_catalog.pg_class c ON c.oid = seen.table_oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
""",
}
COLUMNS = {"shop.orders": 6, "shop.customers": 10, "mart.customer_totals": 5}


def _seen(sql: Sql) -> dict[str, tuple[str, int, int, int]]:
    rows = sql("SELECT relation, built_in, reltuples, actual, columns_with_statistics FROM mart.stats_seen")
    return {row[0]: row[1:] for row in rows}


def test_tables_are_analysed_before_the_relations_that_read_them(pg_project: Callable[..., Path], sql: Sql) -> None:
    root = pg_project(designs=STATS_SEEN)
    with (root / "conveyor.yaml").open("a") as config:
        config.write("external: [pg_catalog]\n")
    project = api.open_project(root)
    outcome = api.run(project, env="pg")
    assert outcome.ok, outcome.build.errors if outcome.build else outcome.notes

    seen = _seen(sql)
    # read from staging, during the build, with statistics of every column and the true row count
    assert seen == {
        "shop.orders": ("shop$staging", len(ORDERS), len(ORDERS), COLUMNS["shop.orders"]),
        "shop.customers": ("shop$staging", len(CUSTOMERS), len(CUSTOMERS), COLUMNS["shop.customers"]),
        "mart.customer_totals": ("mart$staging", 5, 5, COLUMNS["mart.customer_totals"]),
    }
    # the published tables keep them (nothing else analysed them since: autovacuum's threshold is 50 rows)
    analysed = sql(
        "SELECT n.nspname || '.' || c.relname, c.reltuples::bigint FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('shop', 'mart') AND c.relkind = 'r' "
        "AND EXISTS (SELECT 1 FROM pg_catalog.pg_statistic s WHERE s.starelid = c.oid)"
    )
    assert {name for name, _ in analysed} >= {*COLUMNS, "mart.top_customers", "mart.stats_seen"}

    # update refills source tables in place (DELETE + COPY) and refreshes CTAS tables: analysed again
    with sqlite3.connect(root / "upstream.db") as con:
        con.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, NULL, NULL, 1)", [(100 + i, 1 + i % 5, "1.00") for i in range(40)]
        )
    assert api.extract_tables(project, ["shop.orders"]).ok
    outcome = api.update(project, ["shop.orders"], env="pg")
    assert outcome.ok, outcome.build.errors if outcome.build else outcome.notes
    seen = _seen(sql)
    assert seen["shop.orders"] == ("shop", len(ORDERS) + 40, len(ORDERS) + 40, COLUMNS["shop.orders"])
    assert seen["mart.customer_totals"][1:3] == (5, 5)
