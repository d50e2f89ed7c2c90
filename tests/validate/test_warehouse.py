"""``validate --with-warehouse``: the selection built empty in a throwaway warehouse (DuckDB, PostgreSQL)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from testkit.services import PG_ADMIN

from conveyor.validate import Problem, validate

MISSING_COLUMN = "SELECT c.id AS customer_id,\n       c.nam AS name,\n"


def _shown(problems: list[Problem]) -> list[str]:
    return [f"{p.severity} {p.code} {p.render()}" for p in problems]


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).write_text(text, encoding="utf-8")


def _break_customer_orders(root: Path) -> None:
    path = root / "schemas/mart/customer_orders.sql"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("SELECT c.id AS customer_id,\n       c.name,\n", MISSING_COLUMN), encoding="utf-8")


# ------------------------------------------------------------------------------------ DuckDB


def test_a_missing_column_is_located_and_nothing_is_left_behind(
    case_project: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    root = case_project("_base")
    _break_customer_orders(root)
    report = validate(root, warehouse="dev", sources=False)
    errors = [p for p in report.problems if p.severity == "error"]
    assert [(p.code, str(p.location)) for p in errors] == [
        ("compile-failed", "schemas/mart/customer_orders.sql:2:10")
    ], _shown(report.problems)
    assert '"nam"' in errors[0].message
    # the view reading it is compiled against a stand-in built from the design
    assert not [p for p in report.problems if p.relation == "mart.big_customers"]
    assert not (root / "warehouse").exists()
    assert list((tmp_path / "scratch").iterdir()) == []


def test_without_a_stand_in_downstream_relations_are_noted(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _write(
        root,
        {
            "schemas/mart/order_days.sql": "SELECT CAST(updated_at AS DATE) AS day, count(*) AS n FROM shop.orders"
            " WHERE nope GROUP BY 1\n",
            "schemas/mart/late.yaml": "name: mart.late\nkind: view\n",
            "schemas/mart/late.sql": "SELECT * FROM mart.order_days\n",
        },
    )
    report = validate(root, warehouse="dev", sources=False)
    assert [(p.code, p.relation, p.severity) for p in report.problems] == [
        ("compile-failed", "mart.order_days", "error"),
        ("not-compiled", "mart.late", "info"),
    ], _shown(report.problems)
    assert "it reads mart.order_days" in report.problems[1].message


def test_the_selection_compiles_its_upstream_but_reports_only_itself(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _break_customer_orders(root)
    assert validate(root, ["mart.order_days"], warehouse="dev", sources=False).problems == []
    report = validate(root, ["mart.big_customers"], warehouse="dev", sources=False)
    assert report.problems == [], _shown(report.problems)  # its upstream fails, but has a typed stand-in
    report = validate(root, ["+mart.big_customers"], warehouse="dev", sources=False)
    assert [p.code for p in report.problems] == ["compile-failed"]


def test_keys_of_an_untyped_ctas_are_checked_against_its_output(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _write(
        root,
        {
            "schemas/mart/order_days.yaml": "name: mart.order_days\nkind: ctas\nconstraints:\n  primary_key: [dy]\n",
            "schemas/mart/order_days.sql": "SELECT * FROM (SELECT CAST(updated_at AS DATE) AS day FROM shop.orders)\n",
        },
    )
    report = validate(root, warehouse="dev", sources=False)
    assert [(p.code, str(p.location)) for p in report.problems] == [
        ("unknown-column", "schemas/mart/order_days.yaml:4")
    ], _shown(report.problems)
    assert "It produces: day." in (report.problems[0].hint or "")


def test_external_relations_are_not_compiled(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _write(root, {"schemas/mart/order_days.sql": "SELECT * FROM other_db.main.calendar\n"})
    report = validate(root, warehouse="dev", sources=False)
    assert [(p.code, p.severity) for p in report.problems] == [("not-compiled", "info")], _shown(report.problems)
    assert "other_db.main.calendar" in report.problems[0].message
    assert report.ok


def test_skip_sql_and_unknown_environments(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _break_customer_orders(root)
    report = validate(root, warehouse="dev", sql=False, sources=False)
    assert "warehouse" not in report.checks
    assert report.problems == []  # the select list names the design's columns: only a warehouse sees "nam"
    report = validate(root, warehouse="prod", sources=False)
    (found,) = report.problems
    assert found.code == "unknown-environment"
    assert 'environment "prod" is not defined' in found.message


def test_an_unsupported_engine_is_reported(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    settings = root / "conveyor.yaml"
    settings.write_text(
        settings.read_text(encoding="utf-8")
        + "  rs:\n    type: redshift\n    dsn: postgresql://someone@redshift.example.com:5439/dw\n",
        encoding="utf-8",
    )
    (found,) = validate(root, warehouse="rs", sources=False).problems
    assert found.code == "warehouse-unavailable"
    assert "supports duckdb and postgres" in found.message


# ------------------------------------------------------------------------------------ PostgreSQL


def _pg_reachable() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", 5432)) == 0


def _scratch_databases() -> set[str]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'conveyor_validate_%'").fetchall()
    return {row[0] for row in rows}


@pytest.fixture
def pg_case(case_project: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The base project with a PostgreSQL environment ``pg`` (its DSN in $VALIDATE_PG_DSN)."""
    if not _pg_reachable():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    monkeypatch.setenv("VALIDATE_PG_DSN", PG_ADMIN)
    root = case_project("_base")
    settings = root / "conveyor.yaml"
    settings.write_text(
        settings.read_text(encoding="utf-8") + "  pg:\n    type: postgres\n    dsn: ${VALIDATE_PG_DSN}\n",
        encoding="utf-8",
    )
    return root


@pytest.mark.postgres
def test_postgres_compiles_the_base_project(pg_case: Path) -> None:
    before = _scratch_databases()
    report = validate(pg_case, warehouse="pg", sources=False)
    assert report.problems == [], _shown(report.problems)
    assert _scratch_databases() == before


@pytest.mark.postgres
def test_postgres_finds_a_missing_column_and_a_type_mismatch(pg_case: Path) -> None:
    _break_customer_orders(pg_case)
    _write(
        pg_case,
        {
            "schemas/mart/order_days.yaml": "name: mart.order_days\nkind: ctas\ncolumns:\n  - name: day\n"
            "    type: date\n  - name: orders\n    type: boolean\n",
        },
    )
    before = _scratch_databases()
    report = validate(pg_case, warehouse="pg", sources=False)
    assert [(p.code, str(p.location)) for p in report.problems] == [
        ("compile-failed", "schemas/mart/customer_orders.sql:2:10"),
        ("output-column-type", "schemas/mart/order_days.yaml:7"),
    ], _shown(report.problems)
    assert "nam" in report.problems[0].message
    assert "comes out as int8, but the design says boolean" in report.problems[1].message
    assert report.exit_code == 2
    assert _scratch_databases() == before
