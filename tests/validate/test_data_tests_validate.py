"""Bad data tests are reported by validate, each at its file:line, before anything runs (exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor import api
from conveyor.validate import validate
from conveyor.validate.preflight import PreflightError
from tests.testkit.cli import CliResult

BASE = """\
name: mart.tested
kind: ctas
columns:
  - {name: customer_id, type: bigint}
  - {name: name, type: text}
  - {name: total, type: "decimal(14,2)"}
"""
SQL = "SELECT id AS customer_id, name, CAST(balance AS DECIMAL(14, 2)) AS total FROM shop.customers\n"

# (what is wrong, the tests: block appended to BASE, expected code, expected line)
CASES = [
    ("unknown column", "tests:\n  - not_null: {column: totl}\n", "test-unknown-column", 8),
    ("unknown unique column", "tests:\n  - unique: {columns: [customer_id, nam]}\n", "test-unknown-column", 8),
    ("relationships to nowhere", "tests:\n  - relationships: {column: customer_id, to: shop.custmers, field: id}\n",
     "test-unknown-relation", 8),
    ("relationships field", "tests:\n  - relationships: {column: customer_id, to: shop.customers, field: cid}\n",
     "test-unknown-column", 8),
    ("text for a number", "tests:\n  - accepted_values: {column: customer_id, values: [1, two]}\n",
     "test-values-type", 8),
    ("number for text", "tests:\n  - accepted_values: {column: name, values: [1]}\n", "test-values-type", 8),
    ("bad where", "tests:\n  - not_null: {column: name, where: \"total >\"}\n", "test-bad-sql", 8),
    ("bad predicate", "tests:\n  - expression: \"total >= (\"\n", "test-bad-sql", 8),
    ("row_count no bound", "tests:\n  - row_count: {}\n", "test-bounds", 8),
    ("min above max", "tests:\n  - row_count: {min: 5, max: 1}\n", "test-bounds", 8),
    ("no column", "tests:\n  - not_null: {severity: warn}\n", "test-misplaced", 8),
]  # fmt: skip


@pytest.mark.parametrize(("tests", "code", "line"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_tests_are_reported_at_their_line(
    make_project: Callable[..., Path], tests: str, code: str, line: int
) -> None:
    root = make_project(designs={"mart/tested.yaml": BASE + tests, "mart/tested.sql": SQL})
    report = validate(root, sources=False)
    found = [(p.code, p.location.line if p.location else None) for p in report.problems if p.severity == "error"]
    assert found == [(code, line)], [p.render() for p in report.problems]
    assert str(report.problems[0].location).startswith("schemas/mart/tested.yaml:")
    with pytest.raises(PreflightError):  # a run refuses before writing anything
        api.load(api.open_project(root), skip_copy=True)


def test_a_column_test_on_a_row_count_is_misplaced(make_project: Callable[..., Path]) -> None:
    design = BASE.replace(
        '{name: total, type: "decimal(14,2)"}', 'name: total\n    type: "decimal(14,2)"\n    tests: [row_count]'
    )
    root = make_project(designs={"mart/tested.yaml": design, "mart/tested.sql": SQL})
    report = validate(root, sources=False)
    assert [(p.code, p.location.line if p.location else None) for p in report.problems] == [("test-misplaced", 8)]


def test_a_custom_assertion_that_does_not_parse(
    make_project: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    root = make_project()
    (root / "tests").mkdir()
    (root / "tests/broken.sql").write_text("SELECT id\nFROM shop.orders WHERE (\n", encoding="utf-8")
    (root / "tests/lonely.sql").write_text("SELECT 1 AS one WHERE false\n", encoding="utf-8")
    report = validate(root, sources=False)
    found = {(p.code, str(p.location).split(":")[0]) for p in report.problems}
    assert found == {("test-assertion-parse", "tests/broken.sql"), ("test-assertion-reads-nothing", "tests/lonely.sql")}
    result = cli("validate", "--skip-sources", cwd=root)
    assert result.code == 2, result.output
    assert "tests/broken.sql:" in result.output and "does not parse" in result.output
    assert "Traceback" not in result.output


def test_a_bad_test_kind_is_a_config_error_with_a_suggestion(
    make_project: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    root = make_project(designs={"mart/tested.yaml": BASE + "tests:\n  - not_nul\n", "mart/tested.sql": SQL})
    result = cli("validate", "--skip-sources", cwd=root)
    assert result.code == 2, result.output
    assert "schemas/mart/tested.yaml:8" in result.output and "not_null" in result.output, result.output


def test_with_a_warehouse_each_test_query_is_compiled(make_project: Callable[..., Path]) -> None:
    tests = (
        "tests:\n"
        '  - expression: "totl >= 0"\n'
        "  - not_null: {column: name, where: \"nam <> ''\"}\n"
        "  - unique: {column: customer_id}\n"
    )
    root = make_project(designs={"mart/tested.yaml": BASE + tests, "mart/tested.sql": SQL})
    (root / "tests").mkdir()
    (root / "tests/joined.sql").write_text("SELECT t.customer_id FROM mart.tested AS t WHERE t.nope\n", "utf-8")
    assert [p for p in validate(root, sources=False).problems if p.severity == "error"] == []  # static: all fine
    report = validate(root, warehouse="dev", sources=False)
    found = sorted((p.code, str(p.location)) for p in report.problems if p.severity == "error")
    assert found == [
        ("test-compile-failed", "schemas/mart/tested.yaml:8"),
        ("test-compile-failed", "schemas/mart/tested.yaml:9"),
        ("test-compile-failed", "tests/joined.sql"),
    ], [p.render() for p in report.problems]
