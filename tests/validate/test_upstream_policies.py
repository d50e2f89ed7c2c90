"""Validate's upstream verdicts against the real run: type limits of warehouses and undesigned tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conveyor import api
from conveyor.validate import validate
from conveyor.validate.preflight import PreflightError


def _set_type(root: Path, sql_type: str) -> None:
    path = root / "schemas/shop/orders.yaml"
    design = yaml.safe_load(path.read_text())
    next(c for c in design["columns"] if c["name"] == "customer_id")["type"] = sql_type
    path.write_text(yaml.safe_dump(design, sort_keys=False))


def _fill(root: Path) -> None:
    with sqlite3.connect(root / "upstream.db") as con:
        con.execute("INSERT INTO customers VALUES (1, 'a', NULL, 1, '2024-01-01T00:00:00+00:00')")
        con.execute("INSERT INTO orders VALUES (1, 1, 12.5, NULL, 0, '2024-01-01T00:00:00+00:00')")


def test_a_decimal_too_wide_for_duckdb_is_an_error_and_the_load_fails(case_project: Callable[[str], Path]) -> None:
    root = case_project("decimal-too-wide-for-duckdb")
    _fill(root)
    codes = [p.code for p in validate(root, cache=False).problems if p.severity == "error"]
    assert codes == ["type-unsupported"]
    with pytest.raises(PreflightError) as refused:  # as validate said, before anything is extracted
        api.run(api.open_project(root))
    assert refused.value.code == "type-unsupported" and "decimal(50,0)" in refused.value.render()
    assert not (root / "lake").exists() and not (root / ".conveyor" / "tracking.db").exists()

    _set_type(root, "text")  # the documented choice: every digit kept
    assert [p for p in validate(root, cache=False).problems if p.severity == "error"] == []
    assert api.run(api.open_project(root)).ok


def test_a_wide_decimal_is_fine_where_every_environment_holds_it(case_project: Callable[[str], Path]) -> None:
    root = case_project("decimal-too-wide-for-duckdb")
    settings = yaml.safe_load((root / "conveyor.yaml").read_text())
    settings["environments"] = {"pg": {"type": "postgres", "dsn": "postgresql://postgres@127.0.0.1/none"}}
    (root / "conveyor.yaml").write_text(yaml.safe_dump(settings))
    assert [p.code for p in validate(root, cache=False).problems if p.severity == "error"] == []


def test_an_upstream_table_without_a_design_is_a_warning(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    with sqlite3.connect(root / "upstream.db") as con:
        con.execute("CREATE TABLE payments (id INTEGER PRIMARY KEY, amount NUMERIC(10,2))")
    found = [p for p in validate(root, cache=False).problems if p.severity != "info"]
    assert [(p.code, p.severity) for p in found] == [("upstream-table-undesigned", "warning")]
    assert "main.payments" in found[0].message and found[0].location is not None
    assert str(found[0].location.path) == "conveyor.yaml"
    assert api.extract_tables(api.open_project(root)).ok  # the extract does not mind it
    # a selection checks only what it selects; an exclude glob leaves the table out
    assert validate(root, ["shop.orders"], cache=False).problems == []
    settings = yaml.safe_load((root / "conveyor.yaml").read_text())
    settings["sources"]["shop"]["exclude"] = ["main.pay*"]
    (root / "conveyor.yaml").write_text(yaml.safe_dump(settings))
    assert [p for p in validate(root, cache=False).problems if p.severity != "info"] == []


def test_env_checks_one_environment_s_limits(case_project: Callable[[str], Path]) -> None:
    """decimal(50,0) fits PostgreSQL, not DuckDB: --env pg passes, --env (the DuckDB one) refuses."""
    root = case_project("decimal-too-wide-for-duckdb")
    settings = yaml.safe_load((root / "conveyor.yaml").read_text())
    duckdb_env = next(iter(settings["environments"]))
    settings["environments"]["pg"] = {"type": "postgres", "dsn": "postgresql://postgres@127.0.0.1/none"}
    (root / "conveyor.yaml").write_text(yaml.safe_dump(settings))

    def errors(environment: str | None) -> list[str]:
        report = validate(root, cache=False, sources=False, environment=environment)
        return [p.code for p in report.problems if p.severity == "error"]

    assert errors(None) == ["type-unsupported"]
    assert errors(duckdb_env) == ["type-unsupported"]
    assert errors("pg") == []
    assert errors("nope") == ["unknown-environment"]
