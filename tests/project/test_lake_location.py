"""lake.path: a folder relative to the project, an absolute folder, s3://..., with ${VAR} replaced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CONVEYOR_YAML
from testkit.cli import CliResult

from conveyor.config.secrets import scrub
from conveyor.errors import SecretError
from conveyor.project import Project


def with_lake(path: str) -> str:
    return CONVEYOR_YAML.replace("  path: lake\n", f"  path: {path}\n")


@pytest.mark.parametrize(
    ("written", "environ", "expected"),
    [
        ("lake", {}, "{root}/lake"),
        ("${CONVEYOR_TEST_LAKE:-lake}", {}, "{root}/lake"),
        ("${CONVEYOR_TEST_LAKE:-lake}", {"CONVEYOR_TEST_LAKE": "s3://bucket/prod"}, "s3://bucket/prod"),
        ("s3://bucket/${CONVEYOR_TEST_ENV}", {"CONVEYOR_TEST_ENV": "staging"}, "s3://bucket/staging"),
        ("${CONVEYOR_TEST_LAKE}", {"CONVEYOR_TEST_LAKE": "/srv/lake"}, "/srv/lake"),
    ],
)
def test_the_lake_location_replaces_variables(
    make_project: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    written: str,
    environ: dict[str, str],
    expected: str,
) -> None:
    for name in ("CONVEYOR_TEST_LAKE", "CONVEYOR_TEST_ENV"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    root = make_project(settings=with_lake(written))
    location = Project.load(root).lake_location
    assert location == expected.format(root=root)
    assert scrub(f"at {location}") == f"at {location}"  # a location is no secret


def test_an_unset_variable_in_the_lake_path_is_a_clear_error(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliResult]
) -> None:
    monkeypatch.delenv("CONVEYOR_TEST_LAKE", raising=False)
    root = make_project(settings=with_lake("${CONVEYOR_TEST_LAKE}"))
    with pytest.raises(SecretError, match='"CONVEYOR_TEST_LAKE" is not set'):
        _ = Project.load(root).lake_location
    result = cli("extract", cwd=root)
    assert result.code == 2, result.output
    assert 'environment variable "CONVEYOR_TEST_LAKE" is not set' in result.output
    assert "conveyor.yaml:" in result.output and "Traceback" not in result.output


def test_validate_reports_an_unset_variable_in_the_lake_path(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliResult]
) -> None:
    monkeypatch.delenv("CONVEYOR_TEST_LAKE", raising=False)
    root = make_project(settings=with_lake("${CONVEYOR_TEST_LAKE}"))
    result = cli("validate", "--format", "json", cwd=root)
    assert result.code == 2, result.output
    assert "unset-env" in result.stdout and "CONVEYOR_TEST_LAKE" in result.stdout
