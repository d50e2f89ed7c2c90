"""The object-store variants: the extract, load, update and unload suites with the lake on S3.

Each test here runs against a real S3-compatible server on loopback (moto, the ``s3_server``
and ``s3_bucket`` fixtures of tests/conftest.py), reached only through the standard AWS
environment. Most reuse the local suites' helpers and tests as they are: the ``s3_lake``
fixture points the project helpers of tests/extract (``conftest.LAKE``) and of the
differential harness (``harness.LAKE``) at a fresh bucket, so the same test runs with the
lake in a bucket instead of a folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import CONVEYOR_YAML as ROOT_CONVEYOR_YAML
from differential import harness

# the services fixtures of the suites these variants reuse (each conftest is per folder)
from differential.conftest import (  # noqa: F401
    my_up,
    my_upstream_db,
    pg_up,
    pg_upstream_dsn,
    pg_warehouse_dsn,
    pg_warehouse_sql,
)
from extract import conftest as extract_conftest
from extract.conftest import my, my_db, my_dsn, pg, pg_database, pg_dsn  # noqa: F401
from warehouse.postgres import conftest as pg_conftest

from conveyor.lake.store import open_store

CONVEYOR_YAML = ROOT_CONVEYOR_YAML


@pytest.fixture
def s3_lake(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3://<fresh bucket>/lake``, the lake of every project the reused helpers write in this test.

    A test that passes must have committed its extracts there: a manifest in the bucket.
    """
    location = f"s3://{s3_bucket}/lake"
    monkeypatch.setattr(extract_conftest, "LAKE", location)
    monkeypatch.setattr(harness, "LAKE", location)
    monkeypatch.setattr(pg_conftest, "LAKE", location)
    yield location
    manifests = [o.key for o in open_store(location).objects("") if o.key.endswith("/manifest.json")]
    assert manifests, f"the test committed nothing to {location}"


@pytest.fixture
def make_project(make_project: Callable[..., Path], s3_lake: str) -> Callable[..., Path]:
    """tests/conftest.py's ``make_project``, each project with its lake under its own prefix of ``s3_lake``.

    Every test of tests/s3 that asks for ``make_project`` or ``project_dir`` gets a lake on S3.
    """
    counter = iter(range(1000))

    def factory(**kwargs: object) -> Path:
        settings = str(kwargs.pop("settings", CONVEYOR_YAML))
        assert "  path: lake\n" in settings, "the settings name no lake folder to move to S3"
        settings = settings.replace("  path: lake\n", f"  path: {s3_lake}/project{next(counter)}\n")
        return make_project(settings=settings, **kwargs)

    return factory
