"""Two hosts run one project whose lake is on S3 and whose tracking store is one PostgreSQL database.

Each host is its own project folder (its own DuckDB warehouse and temporary directory) and
runs commands as ``CONVEYOR_HOST_ID=host-a`` or ``host-b`` with ``TMPDIR`` of its own, so the
``flock`` files a host would keep for an S3 lake are invisible to the other, as on two
machines. What keeps them apart is the advisory locks in the shared tracking store
(``lake_for`` in conveyor/lake/lake.py, wired in the extract and in every run's reads):

- an extract on host-b waits for host-a's extract of the same relation, then fails naming it
  (lake.lock_timeout); once host-a dies, host-b extracts at once and removes its parts;
- retention on host-b removes nothing while a load on host-a reads the relation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testkit import services
from testkit.cli import run_cli

from conveyor.lake.lake import Lake
from tests.conftest import CONVEYOR_YAML, PausedLoad

pytestmark = pytest.mark.postgres

REPO = Path(__file__).parents[2]

HOLD = """
import sys
import pyarrow as pa
from conveyor.lake.lake import lake_for
from conveyor.tracking.store import TrackingStore
location, dsn = sys.argv[1:3]
lake = lake_for(location, TrackingStore.open(dsn))
with lake.writing("shop", "shop.orders", holder="run held-by-a-test") as target:
    writer = target.part_writer(pa.schema([pa.field("id", pa.int64())]))
    writer.write(pa.record_batch([pa.array(range(10), pa.int64())], names=["id"]))
    writer.close()
    print("locked", target.key, flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def tracking_dsn() -> Iterator[str]:
    if not services.reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    with services.pg_database("conveyor_s3hosts") as dsn:
        yield dsn


@pytest.fixture
def hosts(
    s3_bucket: str, tracking_dsn: str, make_project: Callable[..., Path], tmp_path: Path
) -> dict[str, tuple[Path, dict[str, str]]]:
    """host name -> (its project folder, its environment); one bucket, one tracking store."""
    settings = (
        CONVEYOR_YAML.replace("  path: lake\n", f"  path: s3://{s3_bucket}/lake\n  keep: 1\n  lock_timeout: 1\n")
        + f"tracking:\n  dsn: {tracking_dsn}\n"
    )
    found = {}
    for name in ("host-a", "host-b"):
        tmp = tmp_path / f"tmp-{name}"
        tmp.mkdir()
        found[name] = (make_project(settings=settings), {"CONVEYOR_HOST_ID": name, "TMPDIR": str(tmp)})
    return found


def test_an_extract_on_another_host_waits_for_the_writer_and_names_it(
    hosts: dict[str, tuple[Path, dict[str, str]]], s3_bucket: str, tracking_dsn: str
) -> None:
    location = f"s3://{s3_bucket}/lake"
    root_b, env_b = hosts["host-b"]
    env_a = {**os.environ, **hosts["host-a"][1], "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, location, tracking_dsn],
        env=env_a, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline().split()
        assert line and line[0] == "locked", holder.communicate()
        left_by_a = line[1]
        result = run_cli("extract", "shop.orders", cwd=root_b, env=env_b)
        assert result.code == 1, result.output
        text = " ".join(result.output.split())
        assert 'another extract of "shop.orders" (source "shop") is running (run held-by-a-test, pid' in text, text
        assert "on host-a) and did not finish within 1 s." in text
        assert "Its lock is an advisory lock in the tracking store postgresql://" in text
        assert "lake.lock_timeout" in text
        lake = Lake(location)
        assert [o.key for o in lake.store.objects(left_by_a)] == [f"{left_by_a}/part-00000.parquet"]  # untouched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # the server dropped host-a's lock with its connection: host-b extracts, and removes what host-a left
    result = run_cli("extract", "shop.orders", cwd=root_b, env=env_b)
    assert result.code == 0, result.output
    assert lake.store.objects(left_by_a) == []
    latest = lake.latest("shop", "shop.orders")
    assert latest is not None and latest.rows == 5


def test_retention_on_one_host_removes_nothing_a_load_on_another_reads(
    hosts: dict[str, tuple[Path, dict[str, str]]], s3_bucket: str, digest: Callable[[Path], dict[str, str]]
) -> None:
    root_a, env_a = hosts["host-a"]
    root_b, env_b = hosts["host-b"]
    lake = Lake(f"s3://{s3_bucket}/lake")
    assert run_cli("extract", "-q", cwd=root_b, env=env_b).code == 0
    read = lake.latest("shop", "shop.customers")
    assert read is not None
    load = PausedLoad(root_a, "dev", "mart.customer_totals", extra_env=env_a)  # holds its reads, mid-build
    try:
        for _ in range(2):
            result = run_cli("extract", "-q", cwd=root_b, env=env_b)
            assert result.code == 0, result.output
        kept = [m.extract_id for m in lake.committed("shop", "shop.customers")]
        assert len(kept) == 3 and kept[0] == read.extract_id  # keep: 1, but host-a reads: nothing removed
    finally:
        load.release()
    assert load.finish(timeout=120) == 0, load.output
    assert "published" in load.output
    result = run_cli("extract", "-q", cwd=root_b, env=env_b)
    assert result.code == 0, result.output
    assert len(lake.committed("shop", "shop.customers")) == 1  # the reads ended: retention caught up
    assert digest(root_a / "warehouse.duckdb")  # host-a's load published from what it read
