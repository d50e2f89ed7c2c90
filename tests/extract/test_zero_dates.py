"""MySQL zero dates: bootstrap, validate, the read and the load agree, under both policies.

``zero_dates: null`` (the default) reads a zero date as NULL: bootstrap then writes no
not_null on a NOT NULL date column, validate warns where a design says not_null anyway, and
the extract records a warning in the run's events and in the manifest. ``zero_dates: error``
fails the extract on the first zero date.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor import api
from conveyor.bootstrap import bootstrap
from conveyor.validate import validate

from .conftest import extract, lake, only_schema, result_of, write_project

pytestmark = pytest.mark.mysql


@pytest.fixture
def zeros(my: Callable[..., Any], my_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    my("SET SESSION sql_mode = ''")
    my("CREATE TABLE z (id int PRIMARY KEY, d date NOT NULL, dt datetime NOT NULL, ok date NOT NULL)")
    my("INSERT INTO z VALUES (1, '0000-00-00', '2024-05-00 10:00:00', '2024-01-01'), (2, '2024-01-02', NOW(), NOW())")
    monkeypatch.setenv("UP_DSN", my_dsn)


def _project(tmp_path: Path, my_db: str, policy: str | None) -> Path:
    settings = only_schema(my_db)
    if policy is not None:
        settings["sources"]["up"]["zero_dates"] = policy
    return write_project(tmp_path / "p", "mysql", settings=settings)


def _design(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((root / "schemas/up/z.yaml").read_text())
    return data


def test_zero_dates_read_as_null_bootstrap_validate_and_load_agree(tmp_path: Path, my_db: str, zeros: None) -> None:
    root = _project(tmp_path, my_db, None)
    assert bootstrap(api.open_project(root)).ok
    columns = {c["name"]: c for c in _design(root)["columns"]}
    # NOT NULL upstream, but a zero date reads as NULL: the design must not say not_null
    assert "not_null" not in columns["d"] and "not_null" not in columns["dt"] and "not_null" not in columns["ok"]
    assert "zero dates" in (root / "schemas/up/z.yaml").read_text()
    report = validate(root, cache=False)
    assert [p for p in report.problems if p.severity != "info"] == [], [p.render() for p in report.problems]

    outcome = api.run(api.open_project(root))
    assert outcome.ok, outcome
    manifest = lake(root).latest("up", "up.z")
    assert manifest is not None
    assert len(manifest.warnings) == 2 and all("zero date(s)" in w for w in manifest.warnings)
    assert any('"d"' in w and "1 zero date(s)" in w for w in manifest.warnings)
    with api.open_tracking(api.open_project(root)) as store:
        events = [e for e in store.run_events(outcome.run_id) if e.step == "extract"]
    assert [e.detail["warnings"] for e in events] == [manifest.warnings]


def test_a_not_null_design_on_zero_dates_is_a_warning_and_the_load_fails(
    tmp_path: Path, my_db: str, zeros: None
) -> None:
    root = _project(tmp_path, my_db, None)
    assert bootstrap(api.open_project(root)).ok
    path = root / "schemas/up/z.yaml"
    design = _design(root)
    design["columns"][1]["not_null"] = True
    path.write_text(yaml.safe_dump(design, sort_keys=False))
    found = [p for p in validate(root, cache=False).problems if p.severity != "info"]
    assert [(p.code, p.severity) for p in found] == [("upstream-zero-date-not-null", "warning")]
    outcome = api.run(api.open_project(root))
    assert not outcome.ok  # what the warning said: the zero date is NULL in a not-null column


def test_zero_dates_error_policy_fails_the_extract_and_keeps_not_null(tmp_path: Path, my_db: str, zeros: None) -> None:
    root = _project(tmp_path, my_db, "error")
    assert bootstrap(api.open_project(root)).ok
    assert all(c.get("not_null") for c in _design(root)["columns"])
    assert [p for p in validate(root, cache=False).problems if p.severity != "info"] == []
    outcome = extract(root)
    failed = result_of(outcome, "up.z")
    assert failed.status == "failed"
    assert 'holds the zero date "0000-00-00"' in failed.error and "zero_dates: null" in failed.error
