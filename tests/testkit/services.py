"""The real PostgreSQL and MariaDB services of the test machine, and throw-away databases on them.

Every suite that needs a database creates its own with a random name (several suites and
xdist workers run at once) and drops it afterwards, even when a test left sessions open.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MY_ADMIN: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "charset": "utf8mb4"}
PG_PORT, MY_PORT = 5432, 3306


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def require_postgres() -> None:
    """Skip the test when the PostgreSQL service is not running (``make test`` starts it)."""
    if not reachable(PG_PORT):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")


def require_mysql() -> None:
    """Skip the test when the MariaDB/MySQL service is not running (``make test`` starts it)."""
    if not reachable(MY_PORT):
        pytest.skip("MariaDB/MySQL is not running on 127.0.0.1:3306")


def database_name(prefix: str = "conveyor_t") -> str:
    """A fresh database name, unique across processes."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@contextmanager
def pg_database(prefix: str = "conveyor_t") -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its DSN and drops it (sessions and all) afterwards."""
    import psycopg

    require_postgres()
    name = database_name(prefix)
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def empty_pg_database(dsn: str) -> None:
    """End the database's other sessions, drop every schema and recreate ``public``."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
        ).fetchall()
        for (schema,) in schemas:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        conn.execute("CREATE SCHEMA public")


@contextmanager
def my_database(prefix: str = "conveyor_t", *, collation: str | None = None) -> Iterator[str]:
    """A new, empty MariaDB/MySQL database (utf8mb4, the server's collation unless given); yields its name
    and drops it afterwards."""
    import pymysql

    require_mysql()
    name = database_name(prefix)
    admin = pymysql.connect(**MY_ADMIN, autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4" + (f" COLLATE {collation}" if collation else "")
            )
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()
