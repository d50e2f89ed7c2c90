"""Fixtures for the PostgreSQL warehouse tests: a fresh database per test module, a small project.

PostgreSQL runs on 127.0.0.1:5432 (user postgres, trust auth); when it is down the tests
are skipped. The project (``pg_project``) has a SQLite upstream with every value kind
that needs care (decimals, timestamptz with microseconds, NULL next to empty strings,
uuid, json, booleans, bytes with NUL and backslashes) and three levels of transformations::

    shop.customers ─┐
    shop.orders ────┴─> mart.customer_totals -> mart.top_customers -> mart.report (VIEW)

``mart.top_customers`` and ``mart.report`` name their upstream relation unqualified. Every
relation carries the ``version`` the upstream had when it was extracted.
"""

from __future__ import annotations

import sqlite3
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from testkit.services import PG_ADMIN, reachable


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"'.encode())


@pytest.fixture(scope="module")
def pgwh_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of a database created for this test module and dropped after it."""
    if not reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:20]
    name = f"conveyor_pgwh_{module}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        drop_database(name)


@pytest.fixture
def pgwh_dsn(pgwh_database: str) -> Iterator[str]:
    """The module's database, emptied of every user schema before the test."""
    with psycopg.connect(pgwh_database, autocommit=True) as con:
        schemas = [
            r[0]
            for r in con.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                "AND nspname NOT IN ('information_schema', 'public')"
            )
        ]
        for schema in schemas:
            con.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())
    yield pgwh_database


@pytest.fixture
def sql(pgwh_dsn: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """Run one statement on the test database (autocommit, UTC) and return its rows."""
    con = psycopg.connect(pgwh_dsn, autocommit=True)
    con.execute("SET TIME ZONE 'UTC'")

    def run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        cursor = con.execute(statement.encode(), params)
        return cursor.fetchall() if cursor.description else []

    yield run
    con.close()


@pytest.fixture
def roles(pgwh_database: str) -> Iterator[Callable[[str], str]]:
    """A factory of NOLOGIN roles with unique names, dropped after the test."""
    made: list[str] = []

    def make(kind: str) -> str:
        name = f"conveyor_t_{kind}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE ROLE "{name}" NOLOGIN'.encode())
        made.append(name)
        return name

    yield make
    for name in made:
        with psycopg.connect(pgwh_database, autocommit=True) as con:
            con.execute(f'DROP OWNED BY "{name}"'.encode())
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{name}"'.encode())


# ---------------------------------------------------------------------------- the project

CUSTOMERS = [
    # id, name, email, active, created_at, balance, token, profile, avatar
    (
        1,
        "Zoë Ångström",
        "zoe@example.com",
        1,
        "2024-01-02T03:04:05.123456+02:00",
        "1234567890.12",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        '{"tier": "gold", "tags": ["a", "b"], "n": 1.5}',
        b"\x00\x01\\x41\xff",
    ),
    (2, 'Łukasz "Ł" Żółć, Jr.\nline two', "", 0, "1999-12-31T23:59:59.999999-05:00", "-0.01", None, "[]", b""),
    (3, "渡辺 さくら", None, 1, "2024-12-31 12:00:00+00:00", "0", "7c9e6679-7425-40de-944b-e07fc1f90ae7", None, None),
    (4, "\\N", "NULL", None, None, None, None, '{"nested": {"deep": [null, true, "ünï"]}}', b"\\N"),
    (5, "", None, 1, "1970-01-01T00:00:00.000001+00:00", "-9999999999.99", None, '"just a string"', b'\r\n,"'),
]
ORDERS = [
    # id, customer_id, amount, ordered_at, note
    (10, 1, "10.50", "2024-02-01T10:00:00+01:00", "first"),
    (11, 1, "20.25", "2024-02-02T10:00:00.000001+01:00", ""),
    (12, 2, "99.99", "2024-03-01T00:00:00Z", None),
    (13, 3, "0.01", "2024-04-01T12:30:00.5+09:30", "tab\there"),
    (14, 3, "5.00", None, 'comma, "quote"'),
    (15, 5, "1.00", "2000-02-29T00:00:00Z", "\\."),
]

#: the lake of the projects ``pg_project`` writes: a folder of the project, or ``s3://...`` (the
#: object-store variants in tests/s3 point it at a fresh bucket; each project gets its own prefix)
LAKE = "lake"

CONVEYOR_YAML = """\
name: pgproj
sources:
  shop:
    type: sqlite
    dsn: upstream.db
lake:
  path: lake
  part_rows: 1000
environments:
  pg:
    type: postgres
    dsn: "${PGWH_DSN}"
{pg_extra}  local:
    type: duckdb
    dsn: warehouse.duckdb
defaults:
  jobs: 3
  batch_rows: 1024
"""

DESIGNS: dict[str, str] = {
    "shop/customers.yaml": """\
name: shop.customers
description: People who buy things
columns:
  - {name: id, type: bigint, not_null: true}
  - {name: name, type: text, description: "Full name, as written"}
  - {name: email, type: text}
  - {name: active, type: boolean}
  - {name: created_at, type: timestamptz}
  - {name: balance, type: "decimal(12,2)"}
  - {name: token, type: uuid}
  - {name: profile, type: json}
  - {name: avatar, type: bytes}
  - {name: version, type: integer}
constraints:
  primary_key: [id]
""",
    "shop/orders.yaml": """\
name: shop.orders
columns:
  - {name: id, type: bigint}
  - {name: customer_id, type: bigint}
  - {name: amount, type: "decimal(12,2)"}
  - {name: ordered_at, type: timestamptz}
  - {name: note, type: text}
  - {name: version, type: integer}
constraints:
  primary_key: [id]
""",
    "mart/customer_totals.yaml": """\
name: mart.customer_totals
kind: ctas
description: Order totals per customer
columns:
  - {name: customer_id, type: bigint}
  - {name: name, type: text}
  - {name: total, type: "decimal(14,2)", description: Sum of order amounts}
  - {name: orders, type: bigint}
  - {name: version, type: integer}
constraints:
  primary_key: [customer_id]
""",
    "mart/customer_totals.sql": """\
SELECT c.id AS customer_id,
       c.name,
       coalesce(sum(o.amount), 0) AS total,
       count(o.id) AS orders,
       max(c.version) AS version
FROM shop.customers AS c
LEFT JOIN shop.orders AS o ON o.customer_id = c.id
GROUP BY c.id, c.name
""",
    "mart/top_customers.yaml": """\
name: mart.top_customers
kind: ctas
""",
    "mart/top_customers.sql": """\
SELECT customer_id, name, total, version
FROM customer_totals
WHERE total > 0
""",
    "mart/report.yaml": """\
name: mart.report
kind: view
description: What the report shows
""",
    "mart/report.sql": """\
SELECT name, total, version
FROM top_customers
ORDER BY total DESC
""",
}


def make_upstream(path: Path, version: int = 1, extra_orders: int = 0) -> None:
    """(Re)create the SQLite upstream; every row carries ``version``."""
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, active BOOLEAN,
                                created_at TIMESTAMPTZ, balance NUMERIC(12,2), token UUID, profile JSON,
                                avatar BLOB, version INTEGER);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount NUMERIC(12,2),
                             ordered_at TIMESTAMPTZ, note TEXT, version INTEGER);
        """
    )
    con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [(*c, version) for c in CUSTOMERS])
    orders = list(ORDERS) + [(1000 + i, 1 + i % 5, f"{i}.{i % 100:02d}", None, None) for i in range(extra_orders)]
    con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", [(*o, version) for o in orders])
    con.commit()
    con.close()


def write_files(root: Path, files: dict[str, str | None]) -> None:
    for relative, text in files.items():
        path = root / relative
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def pg_project(tmp_path: Path, pgwh_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """A factory: ``pg_project(pg_extra="    keep_backup: false\\n", designs={...})`` -> project folder.

    The ``pg`` environment's DSN comes from ``${PGWH_DSN}``, set to the test database.
    """
    monkeypatch.setenv("PGWH_DSN", pgwh_dsn)
    counter = iter(range(100))

    def make(*, pg_extra: str = "", designs: dict[str, str | None] | None = None, version: int = 1) -> Path:
        root = tmp_path / f"project{next(counter)}"
        root.mkdir()
        make_upstream(root / "upstream.db", version)
        settings = CONVEYOR_YAML.replace("{pg_extra}", pg_extra)
        if "://" in LAKE:
            settings = settings.replace("  path: lake\n", f"  path: {LAKE}/{root.name}\n")
        write_files(root, {"conveyor.yaml": settings})
        write_files(root, {f"schemas/{k}": v for k, v in {**DESIGNS, **(designs or {})}.items()})
        return root

    return make
