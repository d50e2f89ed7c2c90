"""``load --resume`` after the SQL changed: what changed is built again, with everything downstream of it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

# binds (the preflight passes it), then fails on its first row as the load runs
FAILING = (
    "SELECT customer_id, CASE WHEN customer_id > 0 THEN error('no_such_column') ELSE name END AS name, total\n"
    "FROM customer_totals\n"
)


def _rows(root: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _failed_load(root: Path, cli: Callable[..., Any]) -> str:
    """Publish once, then a load whose mart.top_customers fails (mart.customer_totals succeeds)."""
    assert cli("-q", "run", cwd=root).code == 0
    top = root / "schemas/mart/top_customers.sql"
    original = top.read_text()
    top.write_text(FAILING)
    assert cli("-q", "load", cwd=root).code == 1
    top.write_text(original)
    return original


def test_resume_rebuilds_what_changed_since_the_failed_load(make_project: Callable[..., Path], cli: Any) -> None:
    root = make_project()
    _failed_load(root, cli)
    totals = root / "schemas/mart/customer_totals.sql"
    totals.write_text(totals.read_text().replace("coalesce(sum(o.amount), 0) AS total", "100 AS total"))
    result = cli("load", "--resume", cwd=root)
    assert result.code == 0, result.stdout + result.stderr
    assert "changed since run" in result.stdout and "mart.customer_totals" in result.stdout
    resumed = json.loads(cli("runs", "show", "last", "--format", "json", cwd=root).stdout)
    rebuilt = {e["relation"] for e in resumed["events"] if e["step"] in ("load", "build")}
    assert rebuilt == {"mart.customer_totals", "mart.top_customers", "mart.report"}
    assert _rows(root, "SELECT DISTINCT total FROM mart.customer_totals") == [(100,)]
    assert _rows(root, "SELECT DISTINCT total FROM mart.report") == [(100,)]


def test_a_changed_design_counts_too(make_project: Callable[..., Path], cli: Any) -> None:
    root = make_project()
    _failed_load(root, cli)
    design = root / "schemas/mart/customer_totals.yaml"
    design.write_text(design.read_text().replace("Order totals per customer", "Totals"))
    assert cli("-q", "load", "--resume", cwd=root).code == 0
    resumed = json.loads(cli("runs", "show", "last", "--format", "json", cwd=root).stdout)
    assert "mart.customer_totals" in {e["relation"] for e in resumed["events"] if e["step"] == "build"}
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        comment = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'customer_totals'").fetchall()
    assert comment == [("Totals",)]


def test_unchanged_relations_are_not_rebuilt(make_project: Callable[..., Path], cli: Any) -> None:
    root = make_project()
    _failed_load(root, cli)
    result = cli("load", "--resume", cwd=root)
    assert result.code == 0 and "changed since run" not in result.stdout
    resumed = json.loads(cli("runs", "show", "last", "--format", "json", cwd=root).stdout)
    assert {e["relation"] for e in resumed["events"] if e["step"] == "build"} == {"mart.top_customers", "mart.report"}


def test_a_resume_that_cannot_tell_is_refused(make_project: Callable[..., Path], cli: Any) -> None:
    root = make_project()
    _failed_load(root, cli)
    # what a Conveyor that recorded no fingerprints left behind
    with sqlite3.connect(root / ".conveyor/tracking.db") as con:
        con.execute("UPDATE events SET detail = json_remove(detail, '$.fingerprint') WHERE detail IS NOT NULL")
    result = cli("load", "--resume", cwd=root)
    assert result.code == 2, result.stdout + result.stderr
    shown = " ".join(result.stderr.split())
    assert "cannot tell whether" in shown and "changed since the failed load" in shown
    assert "Run conveyor load without --resume" in shown and "Traceback" not in shown
