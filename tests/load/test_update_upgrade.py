"""update (in place, one transaction) and upgrade (drop and rebuild, for development) on DuckDB."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from conveyor import api
from conveyor.errors import RunFailed
from conveyor.warehouse.duckdb.files import connect_shared

# binds (the preflight passes it), then fails on its first row as the build runs
RUNTIME_FAILURE = (
    "SELECT customer_id, CASE WHEN customer_id > 0 THEN error('nope') ELSE name END AS name, total\n"
    "FROM customer_totals\n"
)


def _rows(warehouse: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def _add_orders(root: Path, rows: list[tuple[object, ...]], change: tuple[float, int] | None = None) -> None:
    with sqlite3.connect(root / "upstream.db") as con:
        con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", rows)
        if change:
            con.execute("UPDATE orders SET amount = ? WHERE id = ?", change)


def _incremental_orders(root: Path) -> None:
    design = root / "schemas/shop/orders.yaml"
    design.write_text(design.read_text() + "extract:\n  incremental: {cursor: id}\n")


def test_update_merges_only_new_increments_and_recomputes_dependents(project_dir: Path) -> None:
    _incremental_orders(project_dir)
    project = api.open_project(project_dir)
    assert api.run(project).ok
    warehouse = project_dir / "warehouse.duckdb"
    _add_orders(project_dir, [(20, 2, 1.0, "2024-05-01T00:00:00Z"), (21, 4, 2.5, None)])
    assert api.extract_tables(project, ["shop.orders"]).ok
    outcome = api.update(project, ["shop.orders"])
    assert outcome.ok and outcome.build is not None and outcome.build.published
    # the increment holds the two new rows and (inclusive bound) row 14 at the watermark, merged by key
    assert outcome.build.rows["shop.orders"] == 3
    assert _rows(warehouse, "SELECT count(*), sum(amount) FROM shop.orders") == [(7, pytest.approx(139.25))]
    # dependents were recomputed in the same transaction
    totals = dict(_rows(warehouse, "SELECT customer_id, total FROM mart.customer_totals"))
    assert float(totals[2]) == pytest.approx(100.99) and float(totals[4]) == pytest.approx(2.5)
    assert set(outcome.build.status) == {"shop.orders", "mart.customer_totals", "mart.top_customers", "mart.report"}


def test_a_failing_update_rolls_everything_back(project_dir: Path) -> None:
    project = api.open_project(project_dir)
    assert api.run(project).ok
    warehouse = project_dir / "warehouse.duckdb"
    before = {t: _rows(warehouse, f"SELECT * FROM {t} ORDER BY ALL") for t in ("shop.orders", "mart.customer_totals")}
    _add_orders(project_dir, [(30, 1, 7.0, None)])
    assert api.extract_tables(project, ["shop.orders"]).ok
    # the source table updates fine, then a dependent fails: nothing may stay changed
    (project_dir / "schemas/mart/top_customers.sql").write_text(RUNTIME_FAILURE)
    outcome = api.update(api.open_project(project_dir), ["shop.orders"])
    assert not outcome.ok and outcome.build is not None and not outcome.build.published
    assert outcome.build.status["shop.orders"] == "rolled back"
    assert outcome.build.status["mart.top_customers"] == "failed"
    assert outcome.build.status["mart.report"] == "skipped"
    after = {t: _rows(warehouse, f"SELECT * FROM {t} ORDER BY ALL") for t in before}
    assert after == before


def test_readers_never_see_half_an_update(project_dir: Path) -> None:
    project = api.open_project(project_dir)
    assert api.run(project).ok
    warehouse = project_dir / "warehouse.duckdb"
    seen: list[tuple[object, ...]] = []
    failures: list[BaseException] = []
    stop = threading.Event()
    query = "SELECT (SELECT sum(amount) FROM shop.orders), (SELECT sum(total) FROM mart.customer_totals)"

    def read() -> None:
        # same process: DuckDB shares the open database, so this reads committed states only
        try:
            while not stop.is_set():
                with connect_shared(warehouse) as con:
                    seen.append(con.execute(query).fetchone())
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(3):
            _add_orders(project_dir, [(40 + n, 1, 1.0 + n, None)])
            assert api.extract_tables(project, ["shop.orders"]).ok
            outcome = api.update(project, ["shop.orders"])
            assert outcome.ok, outcome.build.errors if outcome.build else outcome
    finally:
        stop.set()
        reader.join()
    assert not failures and seen
    # the orders total and the per-customer totals always come from the same state
    assert all(orders == totals for orders, totals in seen if orders is not None)


def test_scheduled_start_time_waits_for_a_newer_extract_then_gives_up(project_dir: Path) -> None:
    project = api.open_project(project_dir)
    assert api.run(project).ok
    later = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(RunFailed, match=r"no successful extract after .* shop\.orders"):
        api.update(project, ["shop.orders"], scheduled_start_time=later, wait_timeout=0.5)
    # an extract that started after the time is enough
    earlier = datetime.now(UTC) - timedelta(seconds=1)
    assert api.extract_tables(project, ["shop.orders"]).ok
    assert api.update(project, ["shop.orders"], scheduled_start_time=earlier, wait_timeout=5).ok


def test_upgrade_into_a_sandbox_schema_leaves_production_alone(project_dir: Path) -> None:
    project = api.open_project(project_dir)
    assert api.run(project).ok
    warehouse = project_dir / "warehouse.duckdb"
    before = _rows(warehouse, "SELECT * FROM mart.report ORDER BY ALL")
    outcome = api.upgrade(project, ["mart.top_customers"], into_schema="sandbox")
    assert outcome.ok
    assert _rows(warehouse, "SELECT * FROM sandbox.report ORDER BY ALL") == before
    # the sandboxed view reads the sandboxed table, not production's
    view_sql = _rows(warehouse, "SELECT sql FROM duckdb_views() WHERE schema_name = 'sandbox'")[0][0]
    assert "sandbox.top_customers" in str(view_sql).replace('"', "")
    assert _rows(warehouse, "SELECT * FROM mart.report ORDER BY ALL") == before


def test_upgrade_failure_skips_dependents_and_reports(project_dir: Path) -> None:
    project = api.open_project(project_dir)
    assert api.run(project).ok
    (project_dir / "schemas/mart/top_customers.sql").write_text(RUNTIME_FAILURE)
    outcome = api.upgrade(api.open_project(project_dir), ["mart.customer_totals"])
    assert not outcome.ok and outcome.build is not None
    assert outcome.build.status == {
        "mart.customer_totals": "succeeded",
        "mart.top_customers": "failed",
        "mart.report": "skipped",
    }
    only = api.upgrade(api.open_project(project_dir), ["mart.customer_totals"], only_selected=True)
    assert only.ok and only.build is not None and set(only.build.status) == {"mart.customer_totals"}
