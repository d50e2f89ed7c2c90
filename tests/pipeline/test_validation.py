"""The validation pipeline (validate, then ``load --skip-copy`` into a scratch environment)
catches a dropped upstream column (PostgreSQL upstream) and a broken SQL file, and says so
through the dead-man switch and notifications."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from testkit.services import PG_ADMIN

from conveyor.tracking.store import TrackingStore

from .conftest import Hooks, conveyor, write_pipeline

UPSTREAM = """
CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text, active boolean,
                        created_at timestamptz, balance numeric(10,2));
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, amount numeric(10,2), ordered_at timestamptz);
CREATE TABLE products (id integer, title text, in_stock boolean);
INSERT INTO customers VALUES (1, 'Zoë', 'zoe@example.com', true, '2024-01-02T03:04:05+02:00', 0.10);
INSERT INTO orders VALUES (10, 1, 10.50, '2024-02-01T10:00:00+01:00');
INSERT INTO products VALUES (100, 'Käse', true);
"""


@pytest.fixture
def pg_upstream() -> Iterator[tuple[str, psycopg.Connection]]:
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex(("127.0.0.1", 5432)) != 0:
            pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"conveyor_pl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        conn.execute(UPSTREAM.encode())
        yield dsn, conn
    finally:
        conn.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.mark.postgres
def test_the_validation_pipeline_catches_a_dropped_upstream_column_and_a_broken_sql_file(
    pipeline_project: Callable[..., Path],
    hooks: Hooks,
    pg_upstream: tuple[str, psycopg.Connection],
    store_of: Callable[[Path], TrackingStore],
) -> None:
    dsn, upstream = pg_upstream
    root = pipeline_project()
    settings = root / "conveyor.yaml"
    settings.write_text(
        settings.read_text()
        .replace(
            "type: sqlite\n    dsn: upstream.db", 'type: postgres\n    dsn: ${SHOP_DSN}\n    include: ["public.*"]'
        )
        .replace("defaults:", "  scratch:\n    type: duckdb\n    dsn: scratch.duckdb\ndefaults:")
    )
    write_pipeline(
        root,
        "validation",
        f"""\
        schedule: cron 0 18 * * 1-5 Europe/Berlin
        steps: validation
        environments: {{primary: dev, scratch: scratch}}
        deadman: {hooks.base}/ping
        notify: [{{url: "{hooks.json_url("/hook")}", on: [failure]}}]
        """,
    )
    env: dict[str, str | None] = {"SHOP_DSN": dsn}

    clean = conveyor(root, "pipeline", "run", "validation", "--format", "json", env=env)
    assert clean.code == 0, clean.output
    assert [(s["step"], s["environment"], s["ok"]) for s in clean.json()["steps"]] == [
        ("validate", None, True),
        ("load_skip_copy", "scratch", True),
    ]
    assert hooks.paths() == ["/ping/start", "/ping"]
    assert (root / "scratch.duckdb").exists() and not (root / "warehouse.duckdb").exists()

    # 1. upstream drops a column the design loads
    upstream.execute(b"ALTER TABLE orders DROP COLUMN amount")
    dropped = conveyor(root, "pipeline", "run", "validation", env=env)
    assert dropped.code == 1, dropped.output
    message = hooks.wait("/hook")[0].json()["message"]
    assert "Failed: shop.orders." in message
    assert "First error: " in message and "amount" in message and "schemas/shop/orders.yaml:" in message
    assert hooks.paths("/ping")[-1] == "/ping/fail"
    upstream.execute(b"ALTER TABLE orders ADD COLUMN amount numeric(10,2)")

    # 2. a SQL file that does not parse: the project does not even load, and still the run is
    #    recorded, fails and is notified, naming the file and line
    (root / "schemas" / "mart" / "top_customers.sql").write_text("SELECT customer_id, name, total\nFROM\n")
    broken = conveyor(root, "pipeline", "run", "validation", env=env)
    assert broken.code == 1, broken.output
    message = hooks.wait("/hook", count=2)[1].json()["message"]
    assert "Failed: mart.top_customers." in message
    assert "schemas/mart/top_customers.sql:" in message
    # (`conveyor runs` cannot open a project that does not load: read the store itself)
    assert [r.status for r in store_of(root).list_runs(pipeline="validation")] == ["failed", "failed", "succeeded"]
    assert hooks.paths("/ping")[-1] == "/ping/fail"


def test_a_broken_sql_file_fails_a_full_pipeline_recorded_and_notified(
    pipeline_project: Callable[..., Path], hooks: Hooks, store_of: Callable[[Path], TrackingStore]
) -> None:
    """Not just exit code 2 with nothing written: a scheduled run would fail silently."""
    root = pipeline_project(
        {
            "nightly": f"""\
                schedule: nightly at 02:30 Europe/Berlin
                environments: {{primary: dev}}
                deadman: {hooks.base}/ping
                notify: [{{url: "{hooks.json_url("/hook")}"}}]
                """
        },
        designs={"mart/report.sql": "SELECT name, total\nFROM top_customers\nORDER BY total DESC LIMIT\n"},
    )
    done = conveyor(root, "pipeline", "run", "nightly")
    assert done.code == 1, done.output
    (run,) = store_of(root).list_runs(pipeline="nightly")
    assert run.status == "failed" and "schemas/mart/report.sql:" in (run.error or "")
    assert hooks.paths("/ping") == ["/ping/fail"]  # nothing started
    message = hooks.received("/hook")[0].json()["message"]
    assert "Failed: mart.report." in message and "schemas/mart/report.sql:" in message
    assert not (root / "warehouse.duckdb").exists() and not (root / "lake").exists()
