"""The broken-project corpus: every case reports exactly its one problem, where it is, with its exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.validate import CODES, Problem, jobs, validate
from conveyor.validate.jobs import importable

from .conftest import CliResult, case_names, spec_of

ALL = case_names()
#: cases also run through the console command (a subprocess), in both output formats
THROUGH_CLI = [
    "missing-dependency",
    "unneeded-depends-on",
    "selection-unknown-tag",
    "warehouse-missing-column",
    "bind-unknown-column",
    "freshness-bad-duration",
]


def _pretend_missing(spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Cases about a module that is not installed run as if it were not, installed or not."""
    missing = spec.get("needs_missing")
    if missing:
        monkeypatch.setattr(jobs, "importable", lambda module: module != missing and importable(module))


def _matches(problem: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What differs between a problem (as JSON) and the expectation."""
    wrong = [
        f"{key}: {problem.get(key)!r} != {expected[key]!r}"
        for key in ("code", "severity", "file", "line", "column")
        if key in expected and problem.get(key) != expected[key]
    ]
    if "message" in expected and expected["message"] not in problem["message"]:
        wrong.append(f"message {problem['message']!r} lacks {expected['message']!r}")
    return wrong


def _shown(problems: list[Problem]) -> str:
    return "\n".join(f"{p.severity} {p.code} {p.render()}" for p in problems)


def test_the_corpus_is_complete() -> None:
    assert len(ALL) >= 30
    for name in ALL:
        spec = spec_of(name)
        assert set(spec) <= {"description", "expected", "selection", "warehouse", "delete", "needs_missing"}, name
        assert spec["description"].strip()
        assert spec["expected"]["code"] in CODES, name
        assert spec["expected"]["severity"] in ("error", "warning"), name


def test_the_base_project_is_clean(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    for warehouse in (None, "dev"):
        report = validate(root, warehouse=warehouse)
        assert report.problems == [], _shown(report.problems)
        assert report.ok and report.exit_code == 0
        assert report.relations == 5


@pytest.mark.parametrize("name", ALL)
def test_case(name: str, case_project: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of(name)
    _pretend_missing(spec, monkeypatch)
    root = case_project(name)
    report = validate(root, spec.get("selection") or (), warehouse=spec.get("warehouse"))
    found = [p for p in report.problems if p.severity != "info"]
    assert len(found) == 1, f"{spec['description']}\n{_shown(report.problems)}"
    expected = spec["expected"]
    assert _matches(found[0].to_json(), expected) == [], _shown(found)
    assert report.exit_code == (2 if expected["severity"] == "error" else 0)


@pytest.mark.parametrize("name", THROUGH_CLI)
def test_case_through_the_command(
    name: str, case_project: Callable[[str], Path], validate_cli: Callable[..., CliResult]
) -> None:
    spec = spec_of(name)
    expected = spec["expected"]
    root = case_project(name)
    args = [*(spec.get("selection") or [])]
    if spec.get("warehouse"):
        args += ["--with-warehouse", spec["warehouse"]]
    exit_code = 2 if expected["severity"] == "error" else 0

    result = validate_cli(root, *args, "--format", "json")
    assert result.code == exit_code, result.stderr
    data = result.json()
    assert data["ok"] is (exit_code == 0)
    found = [p for p in data["problems"] if p["severity"] != "info"]
    assert len(found) == 1, data["problems"]
    assert _matches(found[0], expected) == []

    result = validate_cli(root, *args)
    assert result.code == exit_code, result.stderr
    text = " ".join(result.stdout.split())
    where = ":".join(str(expected[k]) for k in ("file", "line", "column") if expected.get(k) is not None)
    assert f"{where}: " in text if where else True
    assert f"[{expected['code']}]" in text
    assert "Traceback" not in result.stderr
    if exit_code:
        assert result.stderr.startswith("Error: validation found 1 error.")
    else:
        assert "OK with 0 errors, 1 warning" in text


def test_spark_with_pyspark_needs_a_runner(
    case_project: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pyspark importable, a spark table still needs a spark runner in this version."""
    monkeypatch.setattr(jobs, "importable", lambda module: True)
    root = case_project("spark-job-without-pyspark")
    codes = [p.code for p in validate(root, sources=False).problems]
    assert codes == ([] if "spark" in jobs.JOB_TYPES else ["job-type-unavailable"])
