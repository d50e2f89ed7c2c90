"""An update while a load builds, on DuckDB: the update waits, so no committed change is lost.

A load renames a new file over the warehouse when it publishes; an update that committed
in the meantime would be thrown away, and an incremental table would never get its rows
back (the tracking store says they were applied). The load runs in a subprocess held in the
middle of its build; ``conveyor update`` runs meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from conveyor import api
from conveyor.errors import UserError, WarehouseError
from conveyor.warehouse.duckdb.warehouse import DuckDBWarehouse

pytestmark = pytest.mark.slow

WAITING = "waiting for the load of warehouse.duckdb to finish"


def _orders(warehouse: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT id, amount FROM shop.orders ORDER BY id").fetchall()


def _totals(warehouse: Path) -> dict[int, float]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {k: float(v) for k, v in con.execute("SELECT customer_id, total FROM mart.customer_totals").fetchall()}


def _add_orders(root: Path, ids: range) -> None:
    with sqlite3.connect(root / "upstream.db") as con:
        con.executemany("INSERT INTO orders VALUES (?, 1, 1.5, NULL)", [(i,) for i in ids])


def _incremental(root: Path) -> Path:
    design = root / "schemas/shop/orders.yaml"
    design.write_text(design.read_text() + "extract:\n  incremental: {cursor: id}\n")
    assert api.run(api.open_project(root)).ok
    return root / "warehouse.duckdb"


def test_an_update_during_a_load_waits_and_nothing_is_lost(
    make_project: Callable[..., Path], paused_load: Callable[..., Any], background: Callable[..., Any]
) -> None:
    root = make_project()
    warehouse = _incremental(root)
    project = api.open_project(root)
    _add_orders(root, range(100, 103))
    assert api.extract_tables(project, ["shop.orders"]).ok
    load = paused_load(root, "dev", "mart.customer_totals")  # has loaded the extracts up to now
    _add_orders(root, range(200, 205))  # a newer increment, which only the update applies
    assert api.extract_tables(project, ["shop.orders"]).ok
    update = background("update", "shop.orders", cwd=root)
    waited = update.wait_for(WAITING, timeout=30)
    still_waiting = update.process.poll() is None  # nothing committed yet
    load.release()
    assert load.finish() == 0, load.output
    assert update.finish() == 0, update.output

    expected = [10, 11, 12, 13, 14, *range(100, 103), *range(200, 205)]
    assert [row[0] for row in _orders(warehouse)] == expected  # the update's rows 200-204 survive the publish
    assert waited and still_waiting, update.output
    assert _totals(warehouse)[1] == pytest.approx(10.5 + 20.25 + 1.5 * 8)
    # the next update finds nothing missing either: the tracking store agrees with the warehouse
    assert api.update(api.open_project(root), ["shop.orders"]).ok
    assert [row[0] for row in _orders(warehouse)] == expected


def test_an_update_gives_up_after_the_lock_timeout_and_changes_nothing(
    make_project: Callable[..., Path], paused_load: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    root = make_project()
    warehouse = _incremental(root)
    _add_orders(root, range(300, 302))
    assert api.extract_tables(api.open_project(root), ["shop.orders"]).ok
    load = paused_load(root, "dev", "mart.customer_totals")
    before = _orders(warehouse)
    result = cli("update", "shop.orders", "--lock-timeout", "1", cwd=root)
    assert result.code == 1, result
    assert WAITING in result.stderr
    assert "was still running after 1 s" in result.stderr and "nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert _orders(warehouse) == before
    load.release()
    assert load.finish() == 0, load.output
    assert [row[0] for row in _orders(warehouse)][-2:] == [300, 301]


def test_a_load_is_refused_at_once_while_an_update_holds_the_warehouse(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse("dev", str(tmp_path / "w.duckdb"))
    warehouse.begin(["s"], run_id="first").publish()
    tx = warehouse.transaction(run_id="upd1", atomic=True)
    try:
        with pytest.raises(WarehouseError, match=r"another update of .*w\.duckdb is running \(run upd1, pid"):
            warehouse.begin(["s"], run_id="second")
    finally:
        tx.abort()
    warehouse.begin(["s"], run_id="third").abort()  # free again


def test_a_build_refuses_to_publish_over_a_file_another_program_changed(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse("dev", str(tmp_path / "w.duckdb"))
    first = warehouse.begin(["s"], run_id="first")
    first.con.execute("CREATE TABLE s.t AS SELECT 1 AS v")
    first.publish()
    build = warehouse.begin(["s"], run_id="second")
    build.con.execute("CREATE TABLE s.t AS SELECT 2 AS v")
    with duckdb.connect(str(warehouse.path)) as con:  # a client that ignores Conveyor's lock
        con.execute("CREATE TABLE s.mine AS SELECT 42 AS answer")
    with pytest.raises(WarehouseError, match="changed while this load was building"):
        build.publish()
    assert not build.staging.exists()  # discarded: resuming it would lose the change as well
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        assert con.execute("SELECT answer FROM s.mine").fetchall() == [(42,)]
        assert con.execute("SELECT v FROM s.t").fetchall() == [(1,)]
    warehouse.begin(["s"], run_id="third").abort()  # the lock was released


def test_a_failed_load_is_not_resumed_over_a_later_update(make_project: Callable[..., Path]) -> None:
    root = make_project()
    warehouse = root / "warehouse.duckdb"
    assert api.run(api.open_project(root)).ok
    good_sql = (root / "schemas/mart/top_customers.sql").read_text()
    (root / "schemas/mart/top_customers.sql").write_text(
        "SELECT customer_id, CASE WHEN customer_id > 0 THEN error('nope') ELSE name END AS name, total"
        " FROM customer_totals\n"
    )
    failed = api.load(api.open_project(root))
    assert not failed.ok and failed.build is not None and not failed.build.published  # its build is kept
    with sqlite3.connect(root / "upstream.db") as con:
        con.execute("INSERT INTO products VALUES (103, 'Apfel', 1)")
    project = api.open_project(root)
    assert api.extract_tables(project, ["shop.products"]).ok
    assert api.update(project, ["shop.products"]).ok
    (root / "schemas/mart/top_customers.sql").write_text(good_sql)
    with pytest.raises(UserError, match=r"update run .* changed environment \"dev\" after the failed load"):
        api.load(api.open_project(root), resume=True)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert (103,) in con.execute("SELECT id FROM shop.products").fetchall()
    assert api.load(api.open_project(root)).ok
