"""The dashboard over a PostgreSQL tracking store (a team's shared one): the same pages and API,
the keyset paging and the environment filter on PostgreSQL's SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from testkit.cli import CliResult
from testkit.services import pg_database as fresh_pg_database

from conveyor import api
from tests.conftest import CONVEYOR_YAML
from tests.web.dashboard import BROKEN_TOP, start_ui, stop

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_tracking() -> Iterator[str]:
    """A fresh PostgreSQL database for the tracking store, dropped afterwards."""
    with fresh_pg_database("conveyor_test_ui") as dsn:
        yield dsn


def test_the_dashboard_reads_a_postgres_store(
    make_project: Callable[..., Path], cli: Callable[..., CliResult], pg_tracking: str
) -> None:
    root = make_project(settings=CONVEYOR_YAML + f"tracking:\n  dsn: {pg_tracking}\n")
    for _ in range(3):
        assert cli("run", "-q", cwd=root).code == 0
    (root / "schemas/mart/top_customers.sql").write_text(BROKEN_TOP)
    assert cli("run", "-q", cwd=root).code == 1
    expected = [r.run_id for r in api.runs(api.open_project(root), limit=10)]
    assert len(expected) == 4

    process, url, _ = start_ui(root, {})
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            body = client.get("/api/runs").json()
            assert [r["run_id"] for r in body["runs"]] == expected
            seen, before = [], None
            while True:
                page = client.get(
                    "/api/runs", params={"limit": 1, "environment": "dev", **({"before": before} if before else {})}
                ).json()
                seen += [r["run_id"] for r in page["runs"]]
                before = page["next_before"]
                if before is None:
                    break
            assert seen == expected
            assert [r["run_id"] for r in client.get("/api/runs?status=failed").json()["runs"]] == expected[:1]
            html = client.get(f"/runs/{expected[0]}").text
            assert "Conversion Error" in html and "mart.top_customers" in html
            assert client.get("/api/runs/last").json()["run"]["status"] == "failed"

            # the lineage's colours, a relation's builds and the extracts, on PostgreSQL's SQL
            lineage = client.get("/api/lineage", params={"focus": "mart.top_customers", "up": 2}).json()
            colour = {n["name"]: n["status"] for n in lineage["nodes"]}
            assert colour["mart.top_customers"] == "failed" and colour["mart.customer_totals"] != "none"
            assert colour["mart.report"] == "skipped"
            with api.open_tracking(api.open_project(root)) as store:
                events = store.relation_events("mart.top_customers", limit=60)
                states = store.extract_state()
            relation = client.get("/api/relations/mart.top_customers").json()
            assert [b["id"] for b in relation["builds"]] == [e.id for e in events] and len(events) >= 4
            assert relation["builds"][0]["status"] == "failed" and relation["spark"]["runs"] == 3
            extracts = client.get("/api/extracts").json()["tables"]
            assert sorted((t["relation"], t["rows"]) for t in extracts) == sorted(
                (s.table_name, s.rows) for s in states
            )
            for path in (
                "/lineage",
                "/relations/mart.top_customers",
                "/extracts",
                "/extracts/shop.orders",
                "/pipelines",
            ):
                assert client.get(path).status_code == 200, path
    finally:
        assert stop(process) == 0
