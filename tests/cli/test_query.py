"""``conveyor query`` on the published DuckDB warehouse: table, JSON and CSV, exact values, bad SQL."""

from __future__ import annotations

from pathlib import Path

from testkit.cli import run_cli


def test_query_prints_exact_rows_in_every_format(project_dir: Path) -> None:
    assert run_cli("-p", str(project_dir), "-q", "run").code == 0
    sql = "SELECT 1.50::decimal(10,2) AS d, NULL AS n, 'Zoë' AS s UNION ALL SELECT 2, 3, NULL"
    table = run_cli("-p", str(project_dir), "query", sql)
    assert table.code == 0, table.output
    assert table.stdout.splitlines()[:3] == ["   d  n  s", "1.50     Zoë", "2.00  3"]  # numbers right-aligned
    data = run_cli("query", sql, "--format", "json", "-p", str(project_dir)).json()
    assert data["rows"][0] == {"d": "1.50", "n": None, "s": "Zoë"} and data["more"] is False
    csv = run_cli("-p", str(project_dir), "query", sql, "--format", "csv")
    assert csv.stdout == "d,n,s\n1.50,,Zoë\n2.00,3,\n"
    counted = run_cli("-p", str(project_dir), "query", "FROM shop.orders", "--limit", "2")
    assert "(first 2 rows; --limit shows more)" in counted.stdout


def test_query_refuses_writes_and_bad_sql_with_exit_2(project_dir: Path) -> None:
    assert run_cli("-p", str(project_dir), "-q", "run").code == 0
    for sql in ("DELETE FROM shop.orders", "SELECT nope FROM shop.orders"):
        done = run_cli("-p", str(project_dir), "query", sql)
        assert done.code == 2 and "the query failed" in done.stderr and "Traceback" not in done.output
    assert run_cli("-p", str(project_dir), "query", "SELECT count(*) AS n FROM shop.orders").stdout == "n\n5\n"


def test_a_multi_line_error_puts_its_hint_on_a_line_of_its_own(project_dir: Path) -> None:
    """DuckDB's message ends with a caret under the bad token; the hint must not trail it."""
    assert run_cli("-p", str(project_dir), "-q", "run").code == 0
    done = run_cli("-p", str(project_dir), "query", "FROM nosuch_table")
    assert done.code == 2, done.output
    lines = [line.rstrip() for line in done.stderr.splitlines()]
    caret = [line for line in lines if line.strip().startswith("^")]
    assert caret and caret[0].strip().strip("^") == "", lines
    assert "Fix the SQL." in lines, lines
