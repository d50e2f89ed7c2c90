"""A whole project with its lake on a real S3-compatible server: the same warehouse as a local lake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from testkit.cli import CliResult

from conveyor.lake.lake import Lake
from conveyor.project import Project


def test_run_with_the_lake_on_s3_builds_the_same_warehouse_as_a_local_lake(
    s3_project: Callable[..., Path],
    make_project: Callable[..., Path],
    cli: Callable[..., CliResult],
    digest: Callable[[Path], dict[str, str]],
) -> None:
    remote, local = s3_project(), make_project()
    for root in (remote, local):
        result = cli("run", cwd=root)
        assert result.code == 0, result.output
    assert not (remote / "lake").exists()  # nothing of the lake on local disk
    assert digest(remote / "warehouse.duckdb") == digest(local / "warehouse.duckdb")
    lake = Lake(Project.load(remote).lake_location)
    assert lake.where.startswith("s3://") and len(lake.tables()) == 3
    latest = lake.latest("shop", "shop.orders")
    assert latest is not None and latest.location.startswith("s3://") and latest.rows == 5
