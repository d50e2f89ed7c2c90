"""Fixtures for the object-store lake: a moto S3 server per session, a fresh bucket per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testkit.s3 import S3Server, moto_server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; the AWS environment variables point at the server for the test."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server.create_bucket()
