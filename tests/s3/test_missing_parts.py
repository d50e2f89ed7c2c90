"""A part missing from the bucket fails the load of its relation clearly, on DuckDB and PostgreSQL.

The part is deleted with an independent client (boto3), as a bucket lifecycle rule or an
operator might. The load names the relation, the extract and where it is, says what to do,
and publishes nothing: the previous warehouse stays as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import boto3
import duckdb
import pytest
from testkit.cli import CliResult
from warehouse.postgres.conftest import pg_project, pgwh_database, pgwh_dsn, sql  # noqa: F401

from conveyor import api
from conveyor.lake.lake import Lake

pytestmark = pytest.mark.usefixtures("s3_lake")


def _delete_a_part(root: Path) -> str:
    """Delete the first part of the newest extract of shop.orders; the extract's location."""
    manifest = Lake(api.open_project(root).lake_location).latest("shop", "shop.orders")
    assert manifest is not None and manifest.location.startswith("s3://")
    url = urlparse(f"{manifest.location}/{manifest.files[0].path}")
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).delete_object(
        Bucket=url.netloc, Key=url.path.lstrip("/")
    )
    return manifest.location


def _check(result: CliResult, location: str) -> None:
    assert result.code == 1, result.output
    extract_id = location.rsplit("/", 1)[-1]
    assert f'reading extract {extract_id} of "shop.orders" at {location} failed' in result.output.replace("\n", " ")
    assert 'Re-extract it: "conveyor extract shop.orders --full"' in result.output
    assert "Traceback" not in result.output and "conveyor-test-secret" not in result.output


def test_a_part_changed_in_the_bucket_fails_a_duckdb_load_clearly(
    project_dir: Path, cli: Callable[..., CliResult]
) -> None:
    """A DuckDB load checks every part it stages against the sha256 its manifest recorded."""
    assert cli("run", cwd=project_dir).code == 0
    manifest = Lake(api.open_project(project_dir).lake_location).latest("shop", "shop.orders")
    assert manifest is not None
    url = urlparse(f"{manifest.location}/{manifest.files[0].path}")
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    body = client.get_object(Bucket=url.netloc, Key=url.path.lstrip("/"))["Body"].read()
    # another valid Parquet file would load silently without the check: here, the same bytes but one
    changed = body[:-9] + bytes([body[-9] ^ 1]) + body[-8:]
    client.put_object(Bucket=url.netloc, Key=url.path.lstrip("/"), Body=changed)
    result = cli("load", cwd=project_dir)
    _check(result, manifest.location)
    assert "differs from what its manifest recorded (sha256)" in result.output.replace("\n", " ")
    with duckdb.connect(str(project_dir / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM shop.orders").fetchall() == [(5,)]  # the previous build


def test_a_missing_part_fails_a_duckdb_load_clearly(project_dir: Path, cli: Callable[..., CliResult]) -> None:
    assert cli("run", cwd=project_dir).code == 0
    location = _delete_a_part(project_dir)
    result = cli("load", cwd=project_dir)
    _check(result, location)
    with duckdb.connect(str(project_dir / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM shop.orders").fetchall() == [(5,)]  # the previous build


@pytest.mark.postgres
def test_a_missing_part_fails_a_postgres_load_clearly(
    pg_project: Callable[..., Path],  # noqa: F811 - the fixture imported above
    sql: Callable[..., list[tuple[object, ...]]],  # noqa: F811 - the fixture imported above
    cli: Callable[..., CliResult],
) -> None:
    root = pg_project()
    assert cli("run", "--env", "pg", cwd=root).code == 0
    before = sql("SELECT count(*) FROM shop.orders")
    location = _delete_a_part(root)
    _check(cli("load", "--env", "pg", cwd=root), location)
    assert sql("SELECT count(*) FROM shop.orders") == before
