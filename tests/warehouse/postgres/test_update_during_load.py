"""An update while a load builds, on PostgreSQL: the update waits for the schema swap, so nothing is lost.

The load runs in a subprocess held in the middle of its build (its staging schemas half
built, the schemas' advisory locks held); ``conveyor update`` runs meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor import api

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WAITING = 'waiting for the load (or update) of schema "'


def _add_orders(root: Path, ids: range) -> None:
    with sqlite3.connect(root / "upstream.db") as con:
        con.executemany("INSERT INTO orders VALUES (?, 1, 1.50, NULL, NULL, 1)", [(i,) for i in ids])


def _order_ids(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as con:
        return [row[0] for row in con.execute("SELECT id FROM shop.orders ORDER BY id").fetchall()]


def _loaded_incremental(pg_project: Callable[..., Path]) -> Path:
    root = pg_project()
    design = root / "schemas/shop/orders.yaml"
    design.write_text(design.read_text() + "extract:\n  incremental: {cursor: id}\n")
    outcome = api.run(api.open_project(root), env="pg")
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    return root


def test_an_update_during_a_load_waits_and_nothing_is_lost(
    pg_project: Callable[..., Path],
    pgwh_dsn: str,
    paused_load: Callable[..., Any],
    background: Callable[..., Any],
) -> None:
    root = _loaded_incremental(pg_project)
    before = _order_ids(pgwh_dsn)
    project = api.open_project(root)
    _add_orders(root, range(100, 103))
    assert api.extract_tables(project, ["shop.orders"]).ok
    load = paused_load(root, "pg", "mart.customer_totals")
    _add_orders(root, range(200, 205))  # a newer increment, which only the update applies
    assert api.extract_tables(project, ["shop.orders"]).ok

    update = background("update", "shop.orders", "--env", "pg", cwd=root)
    waited = update.wait_for(WAITING, timeout=30)
    still_waiting = update.process.poll() is None
    load.release()
    assert load.finish() == 0, load.output
    assert update.finish() == 0, update.output  # it waited instead of failing

    expected = sorted([*before, *range(100, 103), *range(200, 205)])
    assert _order_ids(pgwh_dsn) == expected
    with psycopg.connect(pgwh_dsn) as con:
        (orders,) = con.execute("SELECT orders FROM mart.customer_totals WHERE customer_id = 1").fetchone() or (0,)
    assert orders == 2 + 8  # the dependents were recomputed after the load's swap
    assert waited and still_waiting, update.output
    assert api.update(api.open_project(root), ["shop.orders"], env="pg").ok
    assert _order_ids(pgwh_dsn) == expected


def test_an_update_gives_up_after_the_lock_timeout_and_changes_nothing(
    pg_project: Callable[..., Path], pgwh_dsn: str, paused_load: Callable[..., Any], cli: Callable[..., Any]
) -> None:
    root = _loaded_incremental(pg_project)
    _add_orders(root, range(300, 302))
    assert api.extract_tables(api.open_project(root), ["shop.orders"]).ok
    load = paused_load(root, "pg", "mart.customer_totals")
    before = _order_ids(pgwh_dsn)
    result = cli("update", "shop.orders", "--env", "pg", "--lock-timeout", "1", cwd=root, env={"PGWH_DSN": pgwh_dsn})
    assert result.code == 1, result
    assert WAITING in result.stderr and "after 1 s of waiting" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert _order_ids(pgwh_dsn) == before
    load.release()
    assert load.finish() == 0, load.output
    assert _order_ids(pgwh_dsn)[-2:] == [300, 301]
