"""Shared fixtures: a small, complete Conveyor project built in a temporary folder.

The project (``make_project``) has a SQLite upstream database with three tables and a
``mart`` schema of transformations three levels deep::

    shop.customers ─┐
    shop.orders ────┴─> mart.customer_totals -> mart.top_customers -> mart.report (VIEW)
    shop.products

``mart.top_customers`` and ``mart.report`` read their upstream relation unqualified.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testkit.cli import CONVEYOR, CliResult, run_cli
from testkit.s3 import S3Server, moto_server

CUSTOMERS = [
    # id, name, email, active, created_at, balance (REAL in SQLite)
    (1, "Zoë Ångström", "zoe@example.com", 1, "2024-01-02T03:04:05.123456+02:00", 0.1),
    (2, "Łukasz Żółć", "lukasz@example.com", 0, "2024-06-30T23:59:59-05:00", 1234567.89),
    (3, "渡辺 さくら", "sakura@example.com", 1, "2024-12-31 12:00:00+00:00", -0.01),
    (4, "Null Person", None, None, None, None),
]
ORDERS = [
    # id, customer_id, amount, ordered_at
    (10, 1, 10.5, "2024-02-01T10:00:00+01:00"),
    (11, 1, 20.25, "2024-02-02T10:00:00+01:00"),
    (12, 2, 99.99, "2024-03-01T00:00:00Z"),
    (13, 3, 0.01, "2024-04-01T12:30:00.5+09:30"),
    (14, 3, 5.0, None),
]
PRODUCTS = [(100, "Käse", 1), (101, "Brot", 0), (102, "Crème brûlée", None)]

CONVEYOR_YAML = """\
name: testproj
sources:
  shop:
    type: sqlite
    dsn: upstream.db
lake:
  path: lake
  part_rows: 1000
environments:
  dev:
    type: duckdb
    dsn: warehouse.duckdb
defaults:
  jobs: 2
  batch_rows: 1024
"""

DESIGNS: dict[str, str] = {
    "shop/customers.yaml": """\
name: shop.customers
description: People who buy things
columns:
  - name: id
    type: bigint
    not_null: true
  - name: name
    type: text
    description: Full name
  - name: email
    type: text
  - name: active
    type: boolean
  - name: created_at
    type: timestamptz
  - name: balance
    type: decimal(10,2)
constraints:
  primary_key: [id]
""",
    "shop/orders.yaml": """\
name: shop.orders
columns:
  - name: id
    type: bigint
  - name: customer_id
    type: bigint
  - name: amount
    type: decimal(10,2)
  - name: ordered_at
    type: timestamptz
constraints:
  primary_key: [id]
""",
    "shop/products.yaml": """\
name: shop.products
columns:
  - name: id
    type: integer
  - name: title
    type: text
  - name: in_stock
    type: boolean
""",
    "mart/customer_totals.yaml": """\
name: mart.customer_totals
kind: ctas
description: Order totals per customer
constraints:
  primary_key: [customer_id]
""",
    "mart/customer_totals.sql": """\
SELECT c.id AS customer_id,
       c.name,
       coalesce(sum(o.amount), 0) AS total
FROM shop.customers AS c
LEFT JOIN shop.orders AS o ON o.customer_id = c.id
GROUP BY c.id, c.name
""",
    "mart/top_customers.yaml": """\
name: mart.top_customers
kind: ctas
""",
    "mart/top_customers.sql": """\
SELECT customer_id, name, total
FROM customer_totals
WHERE total > 0
""",
    "mart/report.yaml": """\
name: mart.report
kind: view
description: What the report shows
""",
    "mart/report.sql": """\
SELECT name, total
FROM top_customers
ORDER BY total DESC
""",
}


def make_upstream(path: Path) -> None:
    """The SQLite upstream database of the test project."""
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE,
                                active BOOLEAN, created_at TIMESTAMPTZ, balance NUMERIC(10,2));
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount NUMERIC(10,2),
                             ordered_at TIMESTAMPTZ);
        CREATE TABLE products (id INTEGER, title TEXT, in_stock BOOLEAN);
        """
    )
    con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", CUSTOMERS)
    con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", ORDERS)
    con.executemany("INSERT INTO products VALUES (?, ?, ?)", PRODUCTS)
    con.commit()
    con.close()


def write_files(root: Path, files: dict[str, str | None]) -> None:
    """Write (or, for ``None``, delete) files below ``root``; keys are relative paths."""
    for relative, text in files.items():
        path = root / relative
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def build_project(
    root: Path,
    *,
    settings: str = CONVEYOR_YAML,
    designs: dict[str, str | None] | None = None,
    upstream: bool = True,
) -> Path:
    """Create the test project in ``root``; ``designs`` adds, replaces or (None) removes files."""
    root.mkdir(parents=True, exist_ok=True)
    if upstream:
        make_upstream(root / "upstream.db")
    write_files(root, {"conveyor.yaml": settings})
    write_files(root, {f"schemas/{k}": v for k, v in {**DESIGNS, **(designs or {})}.items()})
    return root


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """A factory: ``make_project(designs={...}, settings=...)`` returns a fresh project folder."""
    counter = iter(range(1000))

    def factory(**kwargs: object) -> Path:
        return build_project(tmp_path / f"project{next(counter)}", **kwargs)  # type: ignore[arg-type]

    return factory


@pytest.fixture
def project_dir(make_project: Callable[..., Path]) -> Path:
    """The unchanged test project."""
    return make_project()


@pytest.fixture(scope="session")
def new_project() -> Callable[..., Path]:
    """``build_project`` for fixtures wider than one test (pass a folder from tmp_path_factory)."""
    return build_project


@pytest.fixture(scope="session")
def cli() -> Callable[..., CliResult]:
    """``cli("run", "-q", cwd=root)`` runs the console script and returns code, stdout, stderr."""
    return run_cli


def warehouse_digest(path: Path) -> dict[str, str]:
    """Relation -> sha256 of its sorted rows, read through a read-only connection."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        names = con.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE NOT internal "
            "UNION ALL SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal "
            "AND schema_name NOT IN ('information_schema', 'pg_catalog')"
        ).fetchall()
        found = {}
        for (name,) in sorted(names):
            rows = con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
            found[name] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return found
    finally:
        con.close()


@pytest.fixture(scope="session")
def digest() -> Callable[[Path], dict[str, str]]:
    """``digest(warehouse_file)``: a checksum of every relation's rows."""
    return warehouse_digest


# ---------------------------------------------------------------------------- concurrent commands

PAUSED_LOAD = """
import sys, time
from pathlib import Path
from conveyor import api
from conveyor.reporting import Reporter

root, env, relation, started, release = sys.argv[1:6]

class Pause(Reporter):
    # holds the build when ``relation`` starts: the load is then under way (staging built,
    # the warehouse's lock held) and waits until the test lets it go on
    def started(self, name, step):
        if name == relation:
            Path(started).touch()
            while not Path(release).exists():
                time.sleep(0.02)

outcome = api.load(api.open_project(root), env=env, reporter=Pause())
print("published" if outcome.ok else f"not published: {outcome.build and outcome.build.errors}", flush=True)
sys.exit(0 if outcome.ok else 1)
"""


class Background:
    """A command running in a subprocess; its output (stdout and stderr merged) is collected as it comes."""

    def __init__(self, args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None):
        import threading

        full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **(env or {})}
        full_env.pop("CONVEYOR_PROJECT", None)
        self.process = subprocess.Popen(
            args, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 60) -> bool:
        """Whether ``text`` appears in the output before the process ends or ``timeout`` passes."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                return text in self.output
            time.sleep(0.05)
        return False

    def finish(self, timeout: float = 120) -> int:
        """Wait for the end; returns the exit code."""
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


class PausedLoad(Background):
    """``conveyor load`` of an environment in a subprocess, held when ``relation`` starts to build."""

    def __init__(self, root: Path, env: str, relation: str, extra_env: dict[str, str] | None = None):
        import time

        self.started, self.release_file = root / ".paused-load-started", root / ".paused-load-release"
        args = [sys.executable, "-c", PAUSED_LOAD, str(root), env, relation, str(self.started), str(self.release_file)]
        super().__init__(args, cwd=root, env=extra_env)
        deadline = time.monotonic() + 120
        while not self.started.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the load never reached {relation}: {self.output}")
            time.sleep(0.02)

    def release(self) -> None:
        self.release_file.touch()


@pytest.fixture
def paused_load() -> Iterator[Callable[..., PausedLoad]]:
    """``paused_load(root, env, relation)``: a load held in the middle of its build; ``.release()`` lets it go on."""
    started: list[PausedLoad] = []

    def start(root: Path, env: str, relation: str, extra_env: dict[str, str] | None = None) -> PausedLoad:
        load = PausedLoad(root, env, relation, extra_env)
        started.append(load)
        return load

    yield start
    for load in started:
        load.release()
        try:
            load.finish(timeout=120)
        except subprocess.TimeoutExpired:
            load.process.kill()
            load.process.wait()


@pytest.fixture
def background() -> Iterator[Callable[..., Background]]:
    """``background("update", "x", cwd=root)``: the console script running in a subprocess (killed at the end)."""
    started: list[Background] = []

    def start(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Background:
        command = Background([CONVEYOR, *args], cwd=cwd, env=env)
        started.append(command)
        return command

    yield start
    for command in started:
        if command.process.poll() is None:
            command.process.kill()
            command.process.wait()


# --------------------------------------------------------------------------- the object-store lake


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server on loopback (moto), one per test worker."""
    with moto_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; the AWS environment variables point at the server for the test (and its subprocesses)."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server.create_bucket()


@pytest.fixture
def s3_project(make_project: Callable[..., Path], s3_bucket: str) -> Callable[..., Path]:
    """``make_project`` with the lake at ``s3://<fresh bucket>/lake`` (keyword arguments as for it)."""

    def factory(**kwargs: object) -> Path:
        settings = str(kwargs.pop("settings", CONVEYOR_YAML))
        settings = settings.replace("  path: lake\n", f"  path: s3://{s3_bucket}/lake\n")
        return make_project(settings=settings, **kwargs)

    return factory
