"""`conveyor schema` prints JSON Schemas that accept real project files and reject typos."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [str(Path(sys.executable).parent / "conveyor"), "schema"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "CONVEYOR_PROJECT"},
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == {"settings", "design", "results"}
    for document in data.values():
        jsonschema.Draft202012Validator.check_schema(document)
    return data


def errors(schema: dict[str, Any], instance: Any) -> list[jsonschema.ValidationError]:
    return list(jsonschema.Draft202012Validator(schema).iter_errors(instance))


def test_project_files_validate(schemas: dict[str, Any], make_project: Callable[..., Path]) -> None:
    root = make_project()
    designs = sorted((root / "schemas").glob("*/*.yaml"))
    assert len(designs) == 6
    for path in designs:
        found = errors(schemas["design"], yaml.safe_load(path.read_text()))
        assert found == [], (path, [e.message for e in found])
    settings = yaml.safe_load((root / "conveyor.yaml").read_text())
    assert errors(schemas["settings"], settings) == []


def test_a_full_design_validates(schemas: dict[str, Any]) -> None:
    design = {
        "name": "shop.orders",
        "kind": "source",
        "description": "Orders",
        "source_table": "main.orders",
        "columns": [
            {"name": "id", "type": "bigint", "not_null": True, "identity": True},
            {"name": "secret", "type": "text", "skipped": True},
        ],
        "constraints": {"primary_key": ["id"], "unique": [["id", "secret"]], "natural_key": ["id"]},
        "extract": {"split_by": "id", "partitions": 4, "incremental": {"cursor": "id", "lag": 10}},
        "tags": ["daily"],
        "attributes": {"sortkey": ["id"], "distkey": "id"},
    }
    assert errors(schemas["design"], design) == []


@pytest.mark.parametrize(
    ("which", "instance", "path"),
    [
        ("design", {"name": "a.b", "descriptoin": "x"}, []),
        ("design", {"name": "a.b", "columns": [{"name": "x"}, {"name": "y", "descriptoin": "z"}]}, ["columns", 1]),
        ("design", {"name": "a.b", "extract": {"incremental": {"cursor": "c", "lagg": 1}}}, ["extract", "incremental"]),
        ("settings", {"name": "p", "lake": {"pth": "x"}}, ["lake"]),
        ("settings", {"name": "p", "sources": {"s": {"type": "sqlite", "dsn": "x", "dsnn": "y"}}}, ["sources", "s"]),
    ],
)
def test_unknown_key_is_rejected(schemas: dict[str, Any], which: str, instance: Any, path: list[Any]) -> None:
    found = errors(schemas[which], instance)
    assert len(found) == 1
    assert list(found[0].absolute_path) == path
    # an optional section is an anyOf(object, null): the reason sits in the error's context
    messages = [found[0].message, *(e.message for e in found[0].context or [])]
    assert any("Additional properties are not allowed" in m for m in messages), messages


@pytest.mark.parametrize(
    ("which", "instance"),
    [
        ("design", {"kind": "view"}),
        ("design", {"name": "a.b", "kind": "table"}),
        ("design", {"name": "a.b", "columns": [{"type": "text"}]}),
        ("settings", {"sources": {}}),
        ("settings", {"name": "p", "sources": {"s": {"type": "oracle", "dsn": "x"}}}),
        ("settings", {"name": "p", "lake": {"keep": 0}}),
    ],
)
def test_missing_or_wrong_values_are_rejected(schemas: dict[str, Any], which: str, instance: Any) -> None:
    assert errors(schemas[which], instance) != []
