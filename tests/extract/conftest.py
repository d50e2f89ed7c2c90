"""Fixtures for the extract integration tests: real PostgreSQL and MariaDB, projects in tmp_path.

PostgreSQL runs on 127.0.0.1:5432 (user postgres, trust auth) and MariaDB/MySQL on
127.0.0.1:3306 (root, no password); each test gets a throw-away database and a test whose
service is down is skipped. Projects are written by hand (``write_project``) with one
source ``up`` whose DSN comes from ``${UP_DSN}``, a DuckDB environment and a small lake.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import psycopg.sql
import pyarrow as pa
import pyarrow.parquet as pq
import pymysql
import pytest
import yaml
from testkit import services
from testkit.cli import CONVEYOR, CliResult
from testkit.services import MY_ADMIN, PG_ADMIN, empty_pg_database, my_database, reachable  # noqa: F401

from conveyor import api
from conveyor.cli import output
from conveyor.cli.main import main
from conveyor.lake.lake import Lake
from conveyor.lake.manifest import Manifest
from conveyor.runctx import Reporter

SOURCE = "up"
#: the lake of every project ``write_project`` writes: a folder of the project, or ``s3://...``
#: (the object-store variants in tests/s3 set it to a fresh bucket for a test)
LAKE = "lake"


def _db_name() -> str:
    return f"conveyor_ex_{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- services


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for the session (creating one per test costs ~0.5 s)."""
    with services.pg_database("conveyor_ex") as dsn:
        yield dsn


@pytest.fixture
def pg_dsn(pg_database: str) -> str:
    """DSN of an empty PostgreSQL database: the session's, with every schema dropped and public recreated."""
    empty_pg_database(pg_database)
    return pg_database


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit psycopg connection to the test database, session time zone UTC."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


@pytest.fixture
def my_db() -> Iterator[str]:
    """Name of a fresh, empty MariaDB/MySQL database, dropped after the test."""
    with my_database("conveyor_ex") as name:
        yield name


@pytest.fixture
def my_dsn(my_db: str) -> str:
    return f"mysql://root@127.0.0.1:3306/{my_db}"


@pytest.fixture
def my(my_db: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """``my(sql, params)`` runs one statement in the test database (session time zone UTC)."""
    conn = pymysql.connect(**MY_ADMIN, database=my_db, autocommit=True, init_command="SET time_zone = '+00:00'")

    def run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())

    try:
        yield run
    finally:
        conn.close()


# --------------------------------------------------------------------------- projects


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write_project(
    root: Path,
    source_type: str,
    *,
    designs: dict[str, dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
) -> Path:
    """A project with source ``up`` (``dsn: ${UP_DSN}``), a DuckDB environment and ``designs``.

    ``designs`` maps a table name to its design (as a dict; ``name`` is filled in).
    """
    root.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {
        "name": "extract_test",
        "sources": {SOURCE: {"type": source_type, "dsn": "${UP_DSN}"}},
        "lake": {"path": _lake_path(root), "part_rows": 1000, "keep": 5},
        "environments": {"dev": {"type": "duckdb", "dsn": "wh.duckdb"}},
        "defaults": {"jobs": 2, "batch_rows": 1024, "retry": {"attempts": 3, "initial_delay": 0.1, "max_delay": 0.2}},
    }
    data = deep_merge(base, settings or {})
    (root / "conveyor.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    for table, body in (designs or {}).items():
        write_design(root, table, body)
    return root


def _lake_path(root: Path) -> str:
    """``LAKE``; on an object store, a prefix of its own for each project (hypothesis examples share a bucket)."""
    return LAKE if "://" not in LAKE else f"{LAKE}/{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"


def only_schema(schema: str) -> dict[str, Any]:
    """Settings that limit the source to one schema.

    A MySQL source sees every database on the server (other projects' too, some huge), so
    bootstrap on MySQL must always be narrowed to the test's own database.
    """
    return {"sources": {SOURCE: {"include": [f"{schema}.*"]}}}


def write_design(root: Path, table: str, body: dict[str, Any]) -> Path:
    path = root / "schemas" / SOURCE / f"{table}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"name": f"{SOURCE}.{table}", **body}, sort_keys=False), encoding="utf-8")
    return path


def columns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "type": sql_type} for name, sql_type in pairs]


# --------------------------------------------------------------------------- lake, warehouse, tracking


def lake(root: Path) -> Lake:
    """The project's lake, wherever ``conveyor.yaml`` puts it (a folder or a bucket)."""
    return Lake(api.open_project(root).lake_location)


def manifest_table(manifest: Manifest) -> pa.Table:
    """Every row of a committed extract, read from its parts (checked against the manifest)."""
    tables = []
    filesystem, paths = manifest.arrow_files()
    for part, path in zip(manifest.files, paths, strict=True):
        table = pq.read_table(path, filesystem=filesystem)
        assert table.num_rows == part.rows, f"{part.path}: manifest says {part.rows} rows"
        tables.append(table)
    table = pa.concat_tables(tables) if tables else manifest.arrow_schema.empty_table()
    assert table.num_rows == manifest.rows
    return table


def warehouse_rows(root: Path, relation: str, order_by: str = "ALL") -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(root / "wh.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(f"SELECT * FROM {relation} ORDER BY {order_by}").fetchall()
    finally:
        con.close()


def extract_state(root: Path) -> dict[str, Any]:
    """The tracking store's extract_state rows by table name."""
    store = api.open_tracking(api.open_project(root))
    try:
        return {row.table_name: row for row in store.extract_state()}
    finally:
        store.close()


def extract_attempts(root: Path, table: str) -> list[Any]:
    store = api.open_tracking(api.open_project(root))
    try:
        return store.list_extracts(table=table)
    finally:
        store.close()


class Recorder(Reporter):
    """A reporter that keeps every message and finished step (thread-safe enough for lists)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.steps: list[tuple[str, str, str, str | None]] = []

    def message(self, text: str, level: str = "info") -> None:
        self.messages.append((level, text))

    def finished(self, relation: str, step: str, status: str, rows: int | None, error: str | None) -> None:
        self.steps.append((relation, step, status, error))


def extract(root: Path, *selection: str, **kwargs: Any) -> api.Outcome:
    """``api.extract_tables`` on a freshly loaded project."""
    return api.extract_tables(api.open_project(root), selection, **kwargs)


def load(root: Path, *selection: str) -> api.Outcome:
    outcome = api.load(api.open_project(root), selection)
    assert outcome.ok, outcome.build
    return outcome


def result_of(outcome: api.Outcome, relation: str) -> Any:
    assert outcome.extract is not None
    return next(r for r in outcome.extract.results if r.relation == relation)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """``cli(project, *args, stdin=None)`` runs ``conveyor -p PROJECT *args`` in this process."""
    for target in (output.console, output.stdout):
        monkeypatch.setattr(target, "width", 250)

    def run(project: Path, *args: str, stdin: str | None = None) -> CliResult:
        capsys.readouterr()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            main(["-p", str(project), *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        out, err = capsys.readouterr()
        return CliResult(code, out, err, args)

    return run


def run_cli(project: Path, *args: str, stdin: str | None = None, timeout: float = 60) -> CliResult:
    """Run the real ``conveyor`` console script in a subprocess."""
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("CONVEYOR_PROJECT", None)
    done = subprocess.run(
        [CONVEYOR, "-p", str(project), *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr, args)


# --------------------------------------------------------------------------- either engine


@dataclass
class Upstream:
    """One engine's test database behind one interface (both drivers take ``%s`` parameters)."""

    engine: str
    dsn: str
    schema: str
    execute: Callable[..., list[tuple[Any, ...]]]
    timestamp_sql: str
    """The upstream column type of a microsecond timestamp cursor."""
    timestamp_design: str
    """Its design type."""

    def lake_table(self, table: str) -> str:
        return f"{self.schema}.{table}"

    def quote(self, name: str) -> str:
        """An identifier quoted for this engine."""
        mark = '"' if self.engine == "postgres" else "`"
        return mark + name.replace(mark, mark + mark) + mark

    def table_design(self, table: str, cols: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
        """A design body naming its upstream table in full (a bare name fails on MySQL: see test_bad_input)."""
        return {"source_table": self.lake_table(table), "columns": cols, **extra}

    def stamp(self, value: datetime) -> datetime:
        """A cursor value as this engine's driver binds and returns it."""
        return value if self.engine == "postgres" else value.astimezone(UTC).replace(tzinfo=None)


@pytest.fixture(
    params=[pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)]
)
def upstream(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Upstream:
    """The test database of each engine in turn, with ``UP_DSN`` set to it."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        conn = request.getfixturevalue("pg")

        def run_pg(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

        found = Upstream("postgres", dsn, "public", run_pg, "timestamptz(6)", "timestamptz")
    else:
        dsn = request.getfixturevalue("my_dsn")
        found = Upstream(
            "mysql", dsn, request.getfixturevalue("my_db"), request.getfixturevalue("my"), "datetime(6)", "timestamp"
        )
    monkeypatch.setenv("UP_DSN", dsn)
    return found
