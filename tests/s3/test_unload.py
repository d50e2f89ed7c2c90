"""``unload`` into a lake on S3, and another project reading it with a ``type: lake`` source
whose dsn is ``s3://bucket/prefix/data/<source>``, on DuckDB and on PostgreSQL.

The tests are the local suites' own (tests/load/test_unload_and_ddl.py and
tests/warehouse/postgres/test_update_upgrade_unload.py), run with the producer's lake in a
fresh bucket; they name the lake source's dsn from the producer's lake location.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from load.test_unload_and_ddl import (  # noqa: F401
    test_another_project_reads_an_unload_as_a_lake_source,
    test_unload_writes_committed_extracts_with_exact_types,
)
from testkit.cli import CliResult
from warehouse.postgres.conftest import pg_project, pgwh_database, pgwh_dsn, sql  # noqa: F401
from warehouse.postgres.test_update_upgrade_unload import (
    test_another_project_reads_an_unload_as_a_lake_source as test_another_project_reads_an_unload_on_postgres,
)
from warehouse.postgres.test_update_upgrade_unload import (
    test_unload_writes_the_published_rows_exactly,  # noqa: F401
)

from conveyor import api
from conveyor.sources.lake import LakeSource

pytestmark = pytest.mark.usefixtures("s3_lake")
__all__ = ["test_another_project_reads_an_unload_on_postgres"]


def test_a_lake_source_lists_and_reads_an_s3_lake_like_a_folder(project_dir: Path, s3_lake: str) -> None:
    """The same tables, schemas and rows through ``s3://`` as through the lake's own readers."""
    project = api.open_project(project_dir)
    assert api.run(project).ok and api.unload(project, ["shop", "mart.report"], source_name="published").ok
    source = LakeSource("marts", f"{project.lake_location}/data/published")
    assert source.folder.startswith(f"{s3_lake}/")
    assert source.list_tables() == [("mart", "report"), ("shop", "customers"), ("shop", "orders"), ("shop", "products")]
    info = source.describe("shop", "customers")
    assert [c.name for c in info.columns] == ["id", "name", "email", "active", "created_at", "balance"]
    assert info.row_estimate == 4


def test_a_lake_source_on_an_empty_prefix_is_a_clear_error(
    project_dir: Path, s3_lake: str, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    assert api.run(api.open_project(project_dir)).ok  # (a committed extract for the s3_lake check)
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    (consumer / "conveyor.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: consumer
            sources:
              marts: {{type: lake, dsn: "{s3_lake}/nothing/data/published"}}
            environments:
              dev: {{type: duckdb, dsn: consumer.duckdb}}
            """
        )
    )
    result = cli("bootstrap", cwd=consumer)
    assert result.code == 1, result.output  # the table failed, as bootstrap reports a source it cannot read
    assert f"finds nothing at {s3_lake}/nothing/data/published" in result.output
    assert "Traceback" not in result.output and "conveyor-test-secret" not in result.output
