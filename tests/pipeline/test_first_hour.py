"""The first hour of a new user, end to end, asserting on what a person reads: ``init`` against a
fresh PostgreSQL database, ``bootstrap``, two transformations of their own, ``validate``, ``run``,
``query``, ``pipeline install``, one scheduler tick under the test clock, and ``runs show``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from testkit.services import pg_database

from conveyor.tracking.store import TrackingStore

from .conftest import SchedulerProcess, conveyor, wait_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def upstream() -> Iterator[str]:
    with pg_database("conveyor_first") as dsn, psycopg.connect(dsn, autocommit=True) as con:
        con.execute(
            "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, country char(2) NOT NULL);"
            "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,"
            " amount numeric(10,2) NOT NULL, placed_at timestamptz NOT NULL);"
            "INSERT INTO customers (name, country) SELECT 'customer ' || g, (ARRAY['DE','FR','IN'])[1 + g % 3]"
            " FROM generate_series(1, 30) g;"
            "INSERT INTO orders (customer_id, amount, placed_at) SELECT 1 + g % 30, g * 1.25,"
            " timestamptz '2026-01-01 00:00:00.000001+00' + g * interval '1 hour' FROM generate_series(1, 300) g;"
        )
        yield dsn


ORDER_TOTALS = """\
name: analytics.order_totals
kind: ctas
description: Orders and revenue per customer.
columns:
  - {name: customer_id, type: integer, not_null: true}
  - {name: name, type: text, not_null: true}
  - {name: orders, type: bigint, not_null: true}
  - {name: revenue, type: 'decimal(38,2)', not_null: true}
constraints:
  primary_key: [customer_id]
"""

ORDER_TOTALS_SQL = """\
SELECT c.id AS customer_id, c.name, count(*) AS orders, sum(o.amount) AS revenue
FROM orders AS o JOIN customers AS c ON c.id = o.customer_id
GROUP BY c.id, c.name
"""

BIG_CUSTOMERS = """\
name: analytics.big_customers
kind: view
description: Customers with more than 1,000 of revenue.
"""


def test_from_an_empty_folder_to_a_scheduled_run(
    tmp_path: Path,
    upstream: str,
    schedulers: Callable[..., SchedulerProcess],
    store_of: Callable[[Path], TrackingStore],
) -> None:
    root = tmp_path / "acme"

    made = conveyor(tmp_path, "init", str(root), "--dsn", upstream, "--source", "shop")
    assert made.code == 0, made.output
    assert f"Created a Conveyor project in {root} reading postgres source shop:" in made.stdout
    assert "conveyor -p" in made.stdout and "bootstrap" in made.stdout
    assert upstream in (root / ".env").read_text()  # the DSN is in .env, named in conveyor.yaml
    settings = (root / "conveyor.yaml").read_text()
    assert upstream not in settings and "${SHOP_DSN}" in settings
    assert ".env" in (root / ".gitignore").read_text().splitlines()

    assert conveyor(root, "init", str(root), "--dsn", upstream).code == 2  # never over a project

    booted = conveyor(root, "bootstrap")
    assert booted.code == 0, booted.output
    assert "shop.customers" in booted.stdout and "shop.orders" in booted.stdout and "2 created" in booted.stdout

    (root / "schemas/analytics/order_totals.yaml").write_text(ORDER_TOTALS)
    (root / "schemas/analytics/order_totals.sql").write_text(ORDER_TOTALS_SQL)
    (root / "schemas/analytics/big_customers.yaml").write_text(BIG_CUSTOMERS)
    (root / "schemas/analytics/big_customers.sql").write_text("SELECT * FROM order_totals WHERE revenue > 1000\n")

    validated = conveyor(root, "validate")
    assert validated.code == 0, validated.output
    assert "5 relation(s) checked" in validated.stdout and "no problems" in validated.stdout

    ran = conveyor(root, "run")
    assert ran.code == 0, ran.output
    assert "Extracted 2/2 tables, 330 rows" in ran.stdout and "Built 5/5 relations" in ran.stdout
    assert re.search(r"Run \S+ succeeded in", ran.stdout)

    asked = conveyor(root, "query", "SELECT count(*) AS n, sum(revenue) AS revenue FROM analytics.big_customers")
    assert asked.code == 0, asked.output
    assert asked.stdout.splitlines()[1].split() == ["30", "56437.50"]

    installed = conveyor(root, "pipeline", "install", "nightly", env={"CONVEYOR_CLOCK": "2026-06-15T01:00:00+00:00"})
    assert installed.code == 0, installed.output
    assert "Installed pipeline nightly: nightly at 02:30 UTC; next run 2026-06-15" in installed.stdout
    listed = conveyor(root, "pipeline", "list")
    assert "nightly" in listed.stdout and "installed" in listed.stdout and "active" in listed.stdout

    store = store_of(root)
    scheduler = schedulers(root, clock=datetime.fromisoformat("2026-06-15T02:29:58+00:00"))
    wait_for(lambda: [s for s in store.slots("nightly") if s.status == "succeeded"], 120, "the nightly run")
    assert scheduler.stop() == 0

    shown = conveyor(root, "runs", "show", "last")
    assert shown.code == 0, shown.output
    first = shown.stdout.splitlines()[0]
    assert first.startswith("Run ") and " pipeline " in first and " succeeded " in first
    for relation in ("shop.customers", "shop.orders", "analytics.order_totals", "analytics.big_customers"):
        assert relation in shown.stdout
    assert "failed" not in shown.stdout
