"""Data tests run on the staging build, before publishing, the same way on DuckDB and PostgreSQL.

Every kind of test passes on correct data; a failed ``error`` test fails its relation, skips
what depends on it and keeps the build from being published; a ``warn`` test is recorded and
published over; each failure records its failing rows and SQL that finds them again in the
published warehouse.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor import api
from conveyor.tracking.models import EventRow

CHECKED = """\
name: mart.checked
kind: ctas
partial_columns: true
columns:
  - name: id
    tests: [not_null, unique]
  - name: customer_id
    tests:
      - relationships: {to: shop.customers, field: id}
      - accepted_values: {values: [1, 2, 3, 5]}
constraints:
  primary_key: [id]
tests:
  - expression: "amount >= 0"
  - row_count: {min: 1, max: 100}
  - row_count_change: {max_drop: 20%}
  - unique: {expression: "customer_id % 1", severity: warn, name: one value}
"""
CHECKED_SQL = "SELECT o.id, o.customer_id, o.amount FROM shop.orders AS o\n"
AFTER = "name: mart.after_checked\nkind: ctas\n"
AFTER_SQL = "SELECT count(*) AS n FROM mart.checked\n"
# every order's customer exists: a test of one source against another, built in parallel
ORDERS_TEST = "tests:\n  - relationships: {column: customer_id, to: shop.customers, field: id}\n"
ASSERTION = "SELECT o.id FROM shop.orders AS o LEFT JOIN mart.checked AS c ON c.id = o.id WHERE c.id IS NULL\n"


def _project(pg_project: Callable[..., Path], checked: str = CHECKED) -> Path:
    root = pg_project(
        designs={
            "mart/checked.yaml": checked,
            "mart/checked.sql": CHECKED_SQL,
            "mart/after_checked.yaml": AFTER,
            "mart/after_checked.sql": AFTER_SQL,
        }
    )
    orders = root / "schemas/shop/orders.yaml"
    orders.write_text(orders.read_text(encoding="utf-8") + ORDERS_TEST, encoding="utf-8")
    (root / "tests").mkdir()
    (root / "tests/no_lost_orders.sql").write_text(ASSERTION, encoding="utf-8")
    return root


def _tests(root: Path, run_id: str) -> dict[tuple[str, str], EventRow]:
    _, events = api.run_events(api.open_project(root), run_id)
    return {(e.relation, (e.detail or {})["test"]): e for e in events if e.step == "test"}


@pytest.mark.parametrize("env", ["local", "pg"])
def test_every_kind_passes_on_correct_data_and_warn_is_published(pg_project: Callable[..., Path], env: str) -> None:
    root = _project(pg_project)
    outcome = api.run(api.open_project(root), env=env)
    assert outcome.build is not None and outcome.build.published, outcome.build.errors if outcome.build else outcome
    tests = _tests(root, outcome.run_id)
    statuses = {key: event.status for key, event in tests.items()}
    assert statuses == {
        ("mart.checked", "not_null(id)"): "succeeded",
        ("mart.checked", "unique(id)"): "succeeded",
        ("mart.checked", "relationships(customer_id -> shop.customers.id)"): "succeeded",
        ("mart.checked", "accepted_values(customer_id)"): "succeeded",
        ("mart.checked", "expression(amount >= 0)"): "succeeded",
        ("mart.checked", "row_count"): "succeeded",
        ("mart.checked", "row_count_change"): "succeeded",
        ("mart.checked", "one value"): "warned",
        ("mart.checked", "no_lost_orders"): "succeeded",
        ("shop.orders", "relationships(customer_id -> shop.customers.id)"): "succeeded",
    }
    warned = tests[("mart.checked", "one value")]
    assert warned.detail is not None and warned.detail["failures"] == 1
    assert warned.detail["rows"] == [{"value": 0, "occurrences": 6}]
    # the SQL recorded finds the same failures in the published warehouse
    found = api.query(api.open_project(root), warned.detail["sql"], env=env)
    assert [tuple(r) for r in found.rows] == [(0, 6)]


@pytest.mark.parametrize("env", ["local", "pg"])
def test_a_failed_error_test_fails_its_relation_and_skips_its_dependents(
    pg_project: Callable[..., Path], env: str
) -> None:
    root = _project(pg_project, CHECKED.replace("values: [1, 2, 3, 5]", "values: [1, 2]"))
    outcome = api.run(api.open_project(root), env=env)
    build = outcome.build
    assert build is not None and not build.published
    assert build.status["mart.checked"] == "failed" and build.status["mart.after_checked"] == "skipped"
    assert "accepted_values(customer_id)" in build.errors["mart.checked"]
    assert "3 failing rows" in build.errors["mart.checked"]
    failed = _tests(root, outcome.run_id)[("mart.checked", "accepted_values(customer_id)")]
    assert failed.status == "failed" and failed.detail is not None
    assert failed.detail["failures"] == 3
    assert sorted(r["id"] for r in failed.detail["rows"]) == [13, 14, 15]  # the key and the value
    assert {r["value"] for r in failed.detail["rows"]} == {3, 5}
    assert '"mart"."checked"' in failed.detail["sql"] and "staging" not in failed.detail["sql"]


@pytest.mark.parametrize("env", ["local", "pg"])
def test_row_count_change_compares_with_the_published_relation(pg_project: Callable[..., Path], env: str) -> None:
    root = _project(pg_project)
    assert api.run(api.open_project(root), env=env).ok
    # the upstream loses half its orders: the next build may not publish
    sql = root / "schemas/mart/checked.sql"
    sql.write_text(CHECKED_SQL.rstrip() + " WHERE o.id < 13\n", encoding="utf-8")
    (root / "tests/no_lost_orders.sql").unlink()
    outcome = api.run(api.open_project(root), env=env)
    assert outcome.build is not None and not outcome.build.published
    assert "6 → 3 rows (-50.0%), allowed drop 20%" in outcome.build.errors["mart.checked"]


@pytest.mark.parametrize("env", ["local", "pg"])
def test_update_runs_the_tests_in_its_transaction_and_rolls_back_on_failure(
    pg_project: Callable[..., Path], env: str
) -> None:
    root = _project(pg_project)
    assert api.run(api.open_project(root), env=env).ok
    before = api.query(api.open_project(root), "SELECT count(*) FROM mart.after_checked", env=env).rows
    design = root / "schemas/mart/checked.yaml"
    design.write_text(CHECKED.replace("values: [1, 2, 3, 5]", "values: [1, 2, 3]"), encoding="utf-8")
    (root / "schemas/mart/checked.sql").write_text(CHECKED_SQL.rstrip() + " WHERE o.id <> 10\n", encoding="utf-8")
    outcome = api.update(api.open_project(root), ["mart.checked"], env=env)
    assert outcome.build is not None and not outcome.build.published
    assert "accepted_values(customer_id)" in outcome.build.errors["mart.checked"]
    assert "1 failing row" in outcome.build.errors["mart.checked"]
    # rolled back: the published relations are as they were
    after = api.query(api.open_project(root), "SELECT count(*) FROM mart.checked", env=env).rows
    assert after == [(6,)]
    assert api.query(api.open_project(root), "SELECT count(*) FROM mart.after_checked", env=env).rows == before
    # the custom assertion caught the lost order too: without it, the update passes its tests and commits
    design.write_text(CHECKED, encoding="utf-8")
    (root / "tests/no_lost_orders.sql").unlink()
    outcome = api.update(api.open_project(root), ["mart.checked"], env=env)
    assert outcome.build is not None and outcome.build.published, outcome.build.errors
    assert api.query(api.open_project(root), "SELECT count(*) FROM mart.checked", env=env).rows == [(5,)]


@pytest.mark.parametrize("env", ["local", "pg"])
def test_publish_on_failure_never_publishes_a_relation_that_failed_its_tests(
    pg_project: Callable[..., Path], env: str
) -> None:
    root = _project(pg_project, CHECKED.replace("values: [1, 2, 3, 5]", "values: [1, 2]"))
    settings = root / "conveyor.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + "  publish_on_failure: true\n", encoding="utf-8")
    outcome = api.run(api.open_project(root), env=env)
    assert outcome.build is not None and outcome.build.published
    assert outcome.build.status["mart.checked"] == "failed"
    published = api.open_environment(api.open_project(root), env).relations()
    assert "mart.customer_totals" in published and "mart.checked" not in published
