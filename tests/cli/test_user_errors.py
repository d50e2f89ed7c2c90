"""User errors: exit code 2, one `Error: ...` paragraph, no traceback, and nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# conveyor.yaml as it is
UNCHANGED = ("", "")

# id -> (designs to change, (old, new) text replaced in conveyor.yaml, arguments, what the error must say)
CASES: dict[str, tuple[dict[str, str], tuple[str, str], list[str], str]] = {
    "malformed-yaml": (
        {"mart/report.yaml": "name: mart.report\nkind: [view\n"},
        UNCHANGED,
        ["run"],
        "schemas/mart/report.yaml:3:1: this is not valid YAML",
    ),
    "unknown-key": (
        {},
        ("  jobs: 2", "  jobz: 2"),
        ["run"],
        'conveyor.yaml:14: unknown key "jobz" in conveyor.yaml. Did you mean "jobs"?',
    ),
    "missing-key": (
        {"mart/report.yaml": "kind: view\ndescription: x\n"},
        UNCHANGED,
        ["run"],
        'schemas/mart/report.yaml:1: missing required key "name"',
    ),
    "sql-parse": (
        {"mart/report.sql": "SELECT name,\n  total\nFROM top_customers\nWHERE (total > 1\n"},
        UNCHANGED,
        ["run"],
        "schemas/mart/report.sql:4:",
    ),
    "missing-dependency": (
        {"mart/report.sql": "SELECT name\nFROM top_customer\n"},
        UNCHANGED,
        ["run"],
        'schemas/mart/report.sql:2:6: "mart.report" reads "top_customer", which is not a relation of this project. '
        'Did you mean "mart.top_customers"?',
    ),
    "cycle": (
        {"mart/customer_totals.sql": "SELECT * FROM mart.report\n"},
        UNCHANGED,
        ["run"],
        "dependency cycle: mart.customer_totals -> mart.top_customers -> mart.report -> mart.customer_totals",
    ),
    "unset-env": (
        {},
        ("dsn: upstream.db", "dsn: ${CONVEYOR_TEST_UNSET_VAR}"),
        ["run"],
        'conveyor.yaml:5: environment variable "CONVEYOR_TEST_UNSET_VAR" is not set',
    ),
    "name-mismatch": (
        {"mart/report.yaml": "name: mart.reports\nkind: view\n"},
        UNCHANGED,
        ["run"],
        'schemas/mart/report.yaml:1: the design is named "mart.reports" but its path says "mart.report"',
    ),
    "unknown-selection": (
        {},
        UNCHANGED,
        ["run", "mart.reprt"],
        'selection "mart.reprt" matches no relation. Did you mean "mart.report"?',
    ),
    "unknown-env": (
        {},
        UNCHANGED,
        ["run", "--env", "prd"],
        'environment "prd" is not defined in conveyor.yaml.',
    ),
}


def _project(make_project: Callable[..., Path], case: str) -> Path:
    designs, (old, new), _, _ = CASES[case]
    root = make_project(designs=designs)
    settings = root / "conveyor.yaml"
    text = settings.read_text()
    assert old in text
    settings.write_text(text.replace(old, new) if old else text)
    return root


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_error_exits_2_with_one_message_and_writes_nothing(
    make_project: Callable[..., Path], cli: Callable[..., object], case: str
) -> None:
    root = _project(make_project, case)
    _, _, argv, expected = CASES[case]
    result = cli(*argv, cwd=root)
    assert result.code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("Error:") == 1
    assert expected in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    assert not (root / "lake").exists()
    assert not (root / "warehouse.duckdb").exists()
    assert not list(root.glob("*building*"))


def test_unset_env_in_a_source_dsn_records_no_run(
    make_project: Callable[..., Path], cli: Callable[..., object]
) -> None:
    root = _project(make_project, "unset-env")
    result = cli("extract", cwd=root)
    assert result.code == 2
    assert not (root / ".conveyor").exists()


def test_debug_shows_the_traceback(make_project: Callable[..., Path], cli: Callable[..., object]) -> None:
    root = _project(make_project, "unknown-selection")
    result = cli("--debug", "run", "mart.reprt", cwd=root)
    assert result.code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "SelectionError" in result.stderr
    assert 'Error: selection "mart.reprt" matches no relation.' in result.stderr


def test_several_problems_are_all_shown(make_project: Callable[..., Path], cli: Callable[..., object]) -> None:
    root = make_project(
        designs={"mart/report.yaml": "name: mart.report\nkindd: view\n", "mart/top_customers.sql": "SELECT FROM\n"}
    )
    result = cli("validate", cwd=root)
    assert result.code == 2
    assert result.stderr.startswith("Error: validation found 2 errors.")
    text = " ".join(result.stdout.split())
    assert 'schemas/mart/report.yaml:2: unknown key "kindd"' in text
    assert "schemas/mart/top_customers.sql:1:" in text


def test_runs_show_of_an_unknown_run(project_dir: Path, cli: Callable[..., object]) -> None:
    result = cli("runs", "show", "nosuchrun", cwd=project_dir)
    assert result.code == 2
    assert result.stderr.startswith("Error: ")
    assert "nosuchrun" in result.stderr
    assert "Traceback" not in result.stderr
