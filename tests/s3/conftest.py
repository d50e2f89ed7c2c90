"""The object-store variants: the extract, load, update and unload suites with the lake on S3.

Each test here runs against a real S3-compatible server on loopback (moto, the ``s3_server``
and ``s3_bucket`` fixtures of tests/conftest.py), reached only through the standard AWS
environment. Most reuse the local suites' helpers and tests as they are: the ``s3_lake``
fixture points the project helpers of tests/extract (``conftest.LAKE``) and of the
differential harness (``harness.LAKE``) at a fresh bucket, so the same test runs with the
lake in a bucket instead of a folder.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
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

from conveyor.lake.store import open_store


@pytest.fixture
def s3_lake(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3://<fresh bucket>/lake``, the lake of every project the reused helpers write in this test.

    A test that passes must have committed its extracts there: a manifest in the bucket.
    """
    location = f"s3://{s3_bucket}/lake"
    monkeypatch.setattr(extract_conftest, "LAKE", location)
    monkeypatch.setattr(harness, "LAKE", location)
    yield location
    manifests = [o.key for o in open_store(location).objects("") if o.key.endswith("/manifest.json")]
    assert manifests, f"the test committed nothing to {location}"
