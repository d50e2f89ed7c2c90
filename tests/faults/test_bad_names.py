"""Names bootstrap accepts but a warehouse or an extract would get wrong (defect 8), end to end.

- An upstream table named ``dotted.name``: bootstrap writes ``source_table: public."dotted.name"``,
  which validate, extract and load read correctly; the unquoted ``public.dotted.name`` is an
  error that says how to quote it.
- Columns that differ only in case, with a DuckDB warehouse (DuckDB cannot tell them apart).
- A 64-byte MariaDB table and column name, with a PostgreSQL warehouse (NAMEDATALEN 63 would
  cut them short, silently).

In each refused case bootstrap warns, validate exits 2 naming the fix, and ``run`` exits 2
with nothing written.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from .badinput import pg_digest, tree_digest

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def pg_database() -> Iterator[Callable[[], str]]:
    """``make()`` creates a throw-away PostgreSQL database and returns its DSN."""
    try:
        psycopg.connect(ADMIN, connect_timeout=3).close()
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    made: list[str] = []

    def make() -> str:
        name = f"conveyor_t_names_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}".encode())
        made.append(name)
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    yield make
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        for name in made:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


def _project(root: Path, source: str, environment: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "conveyor.yaml").write_text(
        f"name: names\nsources:\n  up:\n{source}environments:\n  dev:\n{environment}", encoding="utf-8"
    )
    return root


def _state(root: Path) -> dict[str, str]:
    return {k: v for k, v in tree_digest(root).items() if not k.startswith("schemas/")}


def _refused(cli: Callable[..., Any], root: Path, fragment: str, pg_dsn: str | None = None) -> None:
    """validate and run both exit 2 naming ``fragment``; run writes nothing."""
    checked = cli("validate", "--skip-sources", cwd=root)
    assert checked.code == 2 and fragment in checked.stdout + checked.stderr, checked.stdout + checked.stderr
    before, warehouse = _state(root), pg_digest(pg_dsn) if pg_dsn else {}
    ran = cli("run", cwd=root)
    output = ran.stdout + ran.stderr
    assert ran.code == 2 and fragment in output and "Traceback" not in output, output
    assert output.count("Error:") == 1, output
    assert _state(root) == before
    if pg_dsn:
        assert pg_digest(pg_dsn) == warehouse


@pytest.mark.slow
@pytest.mark.postgres
def test_a_dotted_upstream_name_is_quoted_by_bootstrap_and_extracts(
    tmp_path: Path, cli: Callable[..., Any], pg_database: Callable[[], str]
) -> None:
    dsn = pg_database()
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute('CREATE TABLE "dotted.name" (id integer PRIMARY KEY, label text)')
        con.execute("""INSERT INTO "dotted.name" VALUES (1, 'one'), (2, 'two')""")
    root = _project(tmp_path / "p", f"    type: postgres\n    dsn: {dsn}\n", "    type: duckdb\n    dsn: wh.duckdb\n")
    booted = cli("bootstrap", cwd=root)
    assert booted.code == 0, booted.stdout + booted.stderr
    design = root / "schemas" / "up" / "dotted_name.yaml"
    assert 'source_table: public."dotted.name"' in design.read_text() or (
        "source_table: 'public.\"dotted.name\"'" in design.read_text()
    ), design.read_text()
    checked = cli("validate", cwd=root)
    assert checked.code == 0, checked.stdout + checked.stderr
    ran = cli("run", cwd=root)
    assert ran.code == 0, ran.stdout + ran.stderr
    with duckdb.connect(str(root / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT * FROM up.dotted_name ORDER BY id").fetchall() == [(1, "one"), (2, "two")]

    # written unquoted (as bootstrap used to), it is ambiguous: refused up front, with the quoted form
    text = design.read_text()
    design.write_text("\n".join(ln for ln in text.splitlines() if "source_table" not in ln) + "\n")
    design.write_text(design.read_text() + "source_table: public.dotted.name\n")
    _refused(cli, root, 'public."dotted.name"')


@pytest.mark.slow
@pytest.mark.postgres
def test_columns_that_differ_only_in_case_are_refused_for_duckdb(
    tmp_path: Path, cli: Callable[..., Any], pg_database: Callable[[], str]
) -> None:
    dsn = pg_database()
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute('CREATE TABLE mixed (id integer PRIMARY KEY, "Note" text, note text)')
        con.execute("INSERT INTO mixed VALUES (1, 'A', 'a')")
    root = _project(tmp_path / "p", f"    type: postgres\n    dsn: {dsn}\n", "    type: duckdb\n    dsn: wh.duckdb\n")
    booted = cli("bootstrap", cwd=root)
    assert booted.code == 0 and "differ only in case" in booted.stdout + booted.stderr, booted.stdout + booted.stderr
    _refused(cli, root, "differ only in case")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mysql
def test_64_byte_mariadb_names_are_refused_for_a_postgres_warehouse(
    tmp_path: Path, cli: Callable[..., Any], pg_database: Callable[[], str]
) -> None:
    pymysql = pytest.importorskip("pymysql")
    try:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    except pymysql.err.OperationalError:
        pytest.skip("MariaDB is not running on 127.0.0.1:3306")
    database = f"conveyor_t_names_{uuid.uuid4().hex[:8]}"
    table, column = "t" * 64, "c" * 64
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {database}")
            cur.execute(f"CREATE TABLE {database}.{table} (id int PRIMARY KEY, {column} int)")
            cur.execute(f"INSERT INTO {database}.{table} VALUES (1, 2)")
        warehouse = pg_database()
        root = _project(
            tmp_path / "p",
            f"    type: mysql\n    dsn: mysql://root@127.0.0.1:3306/{database}\n",
            f"    type: postgres\n    dsn: {warehouse}\n",
        )
        booted = cli("bootstrap", cwd=root)
        output = booted.stdout + booted.stderr
        assert booted.code == 0 and "longer than 63 bytes" in output, output
        _refused(cli, root, "longer than 63 bytes", pg_dsn=warehouse)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.close()
