"""Fixtures for the SQL source tests: one throw-away database per test on the real services.

PostgreSQL runs on 127.0.0.1:5432 (user postgres, trust auth) and MariaDB/MySQL on
127.0.0.1:3306 (root, empty password); a test whose service is down is skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pymysql
import pytest
from testkit.services import MY_ADMIN, PG_ADMIN, my_database, pg_database  # noqa: F401


def _db_name() -> str:
    return f"conveyor_t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh, empty PostgreSQL database, dropped after the test."""
    with pg_database() as dsn:
        yield dsn


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit psycopg connection to the test database, session time zone UTC."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


@pytest.fixture
def my_db() -> Iterator[str]:
    """Name of a fresh, empty MariaDB/MySQL database, dropped after the test."""
    with my_database() as name:
        yield name


@pytest.fixture
def my_dsn(my_db: str) -> str:
    """DSN of the fresh MariaDB/MySQL database."""
    return f"mysql://root@127.0.0.1:3306/{my_db}"


@pytest.fixture
def my(my_db: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """``my(sql, params)`` runs a statement in the test database (time zone UTC) and returns its rows."""
    conn = pymysql.connect(**MY_ADMIN, database=my_db, autocommit=True, init_command="SET time_zone = '+00:00'")

    def run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())

    try:
        yield run
    finally:
        conn.close()
