"""Fixtures for the SQL source tests: one throw-away database per test on the real services.

PostgreSQL runs on 127.0.0.1:5432 (user postgres, trust auth) and MariaDB/MySQL on
127.0.0.1:3306 (root, empty password); a test whose service is down is skipped.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pymysql
import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MY_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "charset": "utf8mb4"}


def _reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _db_name() -> str:
    return f"conveyor_t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh, empty PostgreSQL database, dropped after the test."""
    if not _reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = _db_name()
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"'.encode())


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit psycopg connection to the test database, session time zone UTC."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


@pytest.fixture
def my_db() -> Iterator[str]:
    """Name of a fresh, empty MariaDB/MySQL database, dropped after the test."""
    if not _reachable(3306):
        pytest.skip("MariaDB/MySQL is not running on 127.0.0.1:3306")
    name = _db_name()
    admin = pymysql.connect(**MY_ADMIN, autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


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
