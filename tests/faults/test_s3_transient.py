"""Throttling, 5xx answers and reset connections from the object store are retried; a permanent failure is one table's.

The lake's endpoint is a fault-injecting proxy on loopback in front of moto
(tests/testkit/s3proxy.py): real sockets, the clients under test unpatched. Each fault
names the kind of request it hits (a multipart upload's start and parts, the manifest's
create-only PUT, listings, HEADs and ranged GETs of a load), so both clients' retries are
exercised: Arrow's (parts) and obstore's (manifests, listings), plus the lake's own retry of
a manifest PUT whose connection broke after sending (obstore cannot know whether it landed).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from testkit.cli import CliResult, run_cli
from testkit.s3 import S3Server
from testkit.s3proxy import Fault, FaultProxy

from conveyor.lake.lake import Lake

FAULTS = [
    Fault(status=503, code="SlowDown", times=2, method="PUT", path_contains="_conveyor-probe"),
    Fault(reset=True, times=1, method="PUT", path_contains="_conveyor-probe"),
    Fault(status=503, code="SlowDown", times=2, method="POST", path_contains="?uploads"),
    Fault(reset=True, times=2, method="PUT", path_contains="partNumber="),
    Fault(status=500, code="InternalError", times=1, method="POST", path_contains="uploadId="),
    Fault(status=503, code="SlowDown", times=2, method="PUT", path_contains="manifest.json"),
    Fault(reset=True, times=2, method="PUT", path_contains="manifest.json"),
    Fault(status=500, code="InternalError", times=2, method="GET", path_contains="list-type=2"),
    Fault(reset=True, times=1, method="GET", path_contains="list-type=2"),
    Fault(status=503, code="SlowDown", times=2, method="GET", path_contains="manifest.json"),
    Fault(status=503, code="SlowDown", times=2, method="HEAD", path_contains="part-"),
    Fault(reset=True, times=2, method="GET", path_contains="part-"),
]


def no_secret(text: str, s3_server: S3Server) -> None:
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        assert s3_server.env[name] not in text, f"{name} leaked"


def test_throttling_5xx_and_resets_are_retried_and_the_run_builds_the_same_warehouse(
    s3_project: Callable[..., Path],
    make_project: Callable[..., Path],
    s3_server: S3Server,
    digest: Callable[[Path], dict[str, str]],
) -> None:
    remote, local = s3_project(), make_project()
    assert run_cli("run", "-q", cwd=local).code == 0
    with FaultProxy(s3_server.endpoint) as proxy:
        faults = [proxy.add(Fault(**{**f.__dict__, "hits": 0})) for f in FAULTS]
        result = run_cli("run", cwd=remote, env={"AWS_ENDPOINT_URL": proxy.endpoint}, timeout=300)
        assert result.code == 0, result.output
        missed = [(f.method, f.path_contains, f.status, f.reset, f.hits) for f in faults if f.hits != f.times]
        assert not missed, f"faults that never hit (their request kind was not seen): {missed}"
        assert len(proxy.injected()) == sum(f.times or 0 for f in FAULTS)
    assert digest(remote / "warehouse.duckdb") == digest(local / "warehouse.duckdb")
    no_secret(result.output, s3_server)


def test_a_permanent_failure_of_one_tables_uploads_fails_that_table_cleanly(
    s3_project: Callable[..., Path], s3_server: S3Server
) -> None:
    root = s3_project()
    with FaultProxy(s3_server.endpoint) as proxy:
        proxy.add(Fault(status=503, code="SlowDown", path_contains="/shop.orders/", method="PUT"))
        proxy.add(Fault(status=503, code="SlowDown", path_contains="/shop.orders/", method="POST"))
        result: CliResult = run_cli("extract", cwd=root, env={"AWS_ENDPOINT_URL": proxy.endpoint}, timeout=300)
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    failed = [line for line in result.output.splitlines() if "shop.orders" in line and "fail" in line.lower()]
    assert failed, result.output
    assert "SLOW_DOWN" in failed[0] and "try again later" in failed[0], result.output
    no_secret(result.output, s3_server)
    lake = Lake(f"s3://{root_bucket(root)}/lake")
    assert lake.latest("shop", "shop.orders") is None  # nothing of it committed
    assert lake.store.objects(lake.table_key("shop", "shop.orders")) == []  # nor left behind
    assert lake.latest("shop", "shop.customers") is not None  # the other tables were extracted
    con = sqlite3.connect(root / ".conveyor" / "tracking.db")
    try:
        rows = con.execute("SELECT table_name, status, error FROM extracts ORDER BY table_name").fetchall()
        dump = "\n".join(con.iterdump())
    finally:
        con.close()
    assert [(t, s) for t, s, _e in rows] == [
        ("shop.customers", "succeeded"),
        ("shop.orders", "failed"),
        ("shop.products", "succeeded"),
    ]
    no_secret(dump, s3_server)


def root_bucket(root: Path) -> str:
    text = (root / "conveyor.yaml").read_text()
    return text.split("s3://", 1)[1].split("/", 1)[0]


@pytest.fixture(autouse=True)
def _aws(s3_bucket: str) -> None:
    """The AWS environment points at moto for this process too (s3_bucket sets it)."""
