"""Readers during publishes: never a missing relation, never relations of two versions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor import api

from .conftest import CUSTOMERS, ORDERS, make_upstream

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EXTRA = 20_000  # orders added per version, so loads take a while and row counts tell versions apart

# one statement: every relation of both rebuilt schemas, and a view of another schema over them
READ = """
SELECT (SELECT min(version) FROM shop.customers), (SELECT max(version) FROM shop.customers),
       (SELECT min(version) FROM shop.orders), (SELECT max(version) FROM shop.orders),
       (SELECT min(version) FROM mart.customer_totals), (SELECT max(version) FROM mart.customer_totals),
       (SELECT min(version) FROM mart.top_customers), (SELECT max(version) FROM mart.report),
       (SELECT version FROM other.summary),
       (SELECT count(*) FROM shop.orders), (SELECT sum(orders) FROM mart.customer_totals),
       (SELECT count(*) FROM shop.customers)
"""


def orders_of(version: int) -> int:
    return len(ORDERS) + EXTRA * version


class Reader(threading.Thread):
    """Queries the warehouse in a loop until stopped; records every inconsistency it sees."""

    def __init__(self, dsn: str, *, reconnect: bool):
        super().__init__(daemon=True)
        self.dsn, self.reconnect = dsn, reconnect
        self.stop = threading.Event()
        self.reads = 0
        self.versions: set[int] = set()
        self.bad: list[Any] = []

    def run(self) -> None:
        con: psycopg.Connection[Any] | None = None
        while not self.stop.is_set():
            try:
                if con is None or self.reconnect:
                    con = psycopg.connect(self.dsn, autocommit=True)
                row = con.execute(READ).fetchone()
                if self.reconnect:
                    con.close()
            except psycopg.Error as exc:
                self.bad.append(f"{type(exc).__name__}: {exc}")
                con = None
                continue
            assert row is not None
            self.reads += 1
            version = row[0]
            self.versions.add(version)
            versions_agree = len(set(row[:9])) == 1
            counts_agree = row[9] == orders_of(version) and row[10] == orders_of(version) and row[11] == len(CUSTOMERS)
            if not (versions_agree and counts_agree):
                self.bad.append(row)
        if con is not None:
            con.close()


def test_readers_never_see_a_missing_relation_or_a_mix(pg_project: Callable[..., Path], pgwh_dsn: str) -> None:
    root = pg_project(pg_extra="    keep_backup: false\n")
    make_upstream(root / "upstream.db", version=1, extra_orders=EXTRA)
    project = api.open_project(root)
    assert api.run(project, env="pg").ok
    with psycopg.connect(pgwh_dsn, autocommit=True) as con:
        con.execute("CREATE SCHEMA other")
        con.execute("CREATE VIEW other.summary AS SELECT max(version) AS version FROM mart.top_customers")

    readers = [Reader(pgwh_dsn, reconnect=True), Reader(pgwh_dsn, reconnect=False), Reader(pgwh_dsn, reconnect=False)]
    for reader in readers:
        reader.start()
    try:
        for version in range(2, 6):
            time.sleep(0.2)
            make_upstream(root / "upstream.db", version=version, extra_orders=EXTRA * version)
            outcome = api.run(project, env="pg")
            assert outcome.ok, outcome.build.errors if outcome.build else outcome.notes
        time.sleep(0.3)
    finally:
        for reader in readers:
            reader.stop.set()
        for reader in readers:
            reader.join(timeout=60)

    for reader in readers:
        assert reader.bad == [], reader.bad[:5]
        assert reader.reads > 20
    seen = set().union(*(r.versions for r in readers))
    assert {1, 5} <= seen and len(seen) >= 3, seen  # the readers really ran across the publishes
