"""Fixtures for the bootstrap tests: projects with one source and no designs yet, the real
PostgreSQL and MariaDB services (a throw-away database per test), and an in-process CLI.

PostgreSQL runs on 127.0.0.1:5432 (user postgres, trust auth) and MariaDB/MySQL on
127.0.0.1:3306 (root, empty password); a test whose service is down is skipped.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from testkit.cli import CliResult
from testkit.services import MY_ADMIN, PG_ADMIN, reachable

from conveyor.cli import output
from conveyor.cli.bootstrap_cmd import bootstrap as bootstrap_command
from conveyor.cli.main import cli, main

if "bootstrap" not in cli.commands:
    cli.add_command(bootstrap_command)


def _db_name() -> str:
    return f"conveyor_bs_{uuid.uuid4().hex[:12]}"


def write_project(root: Path, sources: str, *, extra: str = "") -> Path:
    """A project folder with ``conveyor.yaml`` (the given ``sources:`` block) and no schemas/."""
    root.mkdir(parents=True, exist_ok=True)
    text = (
        "name: bootstrap_test\n"
        "sources:\n" + textwrap.indent(textwrap.dedent(sources).strip("\n"), "  ") + "\n"
        "environments:\n"
        "  dev:\n"
        "    type: duckdb\n"
        "    dsn: warehouse/dev.duckdb\n"
        "defaults:\n"
        "  jobs: 2\n"
        "  batch_rows: 1024\n" + textwrap.dedent(extra)
    )
    (root / "conveyor.yaml").write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def conveyor(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """``conveyor(project_dir, *args)`` runs ``conveyor -p DIR *args`` in process (wide output)."""
    for target in (output.console, output.stdout):
        monkeypatch.setattr(target, "width", 250)

    def run(project: Path, *args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(["-p", str(project), *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def files_of(root: Path) -> dict[str, bytes]:
    """Every file below ``root/schemas`` with its bytes."""
    schemas = root / "schemas"
    if not schemas.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(schemas.rglob("*")) if p.is_file()}


def by_table(report_rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["table"]: row for row in report_rows}


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh, empty PostgreSQL database, dropped after the test."""
    if not reachable(5432):
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
    """An autocommit connection to the test database."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


# --------------------------------------------------------------------------- MariaDB / MySQL


@pytest.fixture
def my_db() -> Iterator[str]:
    """Name of a fresh, empty MariaDB/MySQL database, dropped after the test."""
    if not reachable(3306):
        pytest.skip("MariaDB/MySQL is not running on 127.0.0.1:3306")
    pytest.importorskip("conveyor.sources.mysql")
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
def my(my_db: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """``my(sql, params)`` runs a statement in the test database and returns its rows."""
    conn = pymysql.connect(**MY_ADMIN, database=my_db, autocommit=True)

    def run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())

    try:
        yield run
    finally:
        conn.close()
