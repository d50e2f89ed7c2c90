"""Upstream drift against the real PostgreSQL and MariaDB services, one throwaway database per test.

Each test bootstraps designs from a live table, checks that validation is clean, changes the
live table (ALTER TABLE, DROP TABLE) and expects the matching drift rows, severities and exit
code, on both engines.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pymysql
import pytest
from testkit.services import PG_ADMIN, reachable

from conveyor.bootstrap import bootstrap
from conveyor.cli import output
from conveyor.cli.main import cli, main
from conveyor.cli.validate_cmd import validate as validate_command
from conveyor.project import Project
from conveyor.validate import Report, validate

MY_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "charset": "utf8mb4"}

PG_TABLE = """
CREATE TABLE items (
    id integer PRIMARY KEY,
    code text NOT NULL UNIQUE,
    qty integer,
    price numeric(10,2),
    note text,
    secret text
)
"""
MY_TABLE = """
CREATE TABLE items (
    id int PRIMARY KEY,
    code varchar(20) NOT NULL UNIQUE,
    qty int,
    price decimal(10,2),
    note text,
    secret text
)
"""


@dataclass
class Upstream:
    """A live upstream database with the items table, and the project bootstrapped from it."""

    engine: str
    run: Callable[[str], None]
    root: Path

    def alter(self, postgres: str, mysql: str) -> None:
        self.run(postgres if self.engine == "postgres" else mysql)


@pytest.fixture
def pg_upstream() -> Iterator[tuple[str, Callable[[str], None]]]:
    if not reachable(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"conveyor_vd_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        yield dsn, lambda sql: conn.execute(sql.encode())
    finally:
        conn.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture
def my_upstream() -> Iterator[tuple[str, Callable[[str], None]]]:
    if not reachable(3306):
        pytest.skip("MariaDB/MySQL is not running on 127.0.0.1:3306")
    name = f"conveyor_vd_{uuid.uuid4().hex[:12]}"
    admin = pymysql.connect(**MY_ADMIN, autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn = pymysql.connect(**MY_ADMIN, database=name, autocommit=True)

    def run(sql: str) -> None:
        with conn.cursor() as cur:
            cur.execute(sql)

    try:
        yield f"mysql://root@127.0.0.1:3306/{name}", run
    finally:
        conn.close()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def _project(root: Path, engine: str, schema: str) -> Path:
    """A project whose source ``up`` sees only ``schema`` (a MariaDB server shows every database)."""
    root.mkdir(parents=True)
    (root / "conveyor.yaml").write_text(
        f"name: drift\nsources:\n  up:\n    type: {engine}\n    dsn: ${{DRIFT_DSN}}\n"
        f'    include: ["{schema}.*"]\n'
        "environments:\n  dev:\n    type: duckdb\n    dsn: warehouse/dev.duckdb\n",
        encoding="utf-8",
    )
    return root


@pytest.fixture(
    params=[pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)]
)
def upstream(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Upstream:
    """The items table bootstrapped into schemas/up/items.yaml, its column ``secret`` then marked skipped."""
    engine = request.param
    dsn, run = request.getfixturevalue("pg_upstream" if engine == "postgres" else "my_upstream")
    run(PG_TABLE if engine == "postgres" else MY_TABLE)
    monkeypatch.setenv("DRIFT_DSN", dsn)
    schema = "public" if engine == "postgres" else dsn.rpartition("/")[2]
    root = _project(tmp_path / "project", engine, schema)
    assert bootstrap(Project.load(root)).ok
    design = root / "schemas" / "up" / "items.yaml"
    text = design.read_text(encoding="utf-8")
    marked = text.replace("  - name: secret\n    type: text\n", "  - name: secret\n    type: text\n    skipped: true\n")
    assert marked != text
    design.write_text(marked, encoding="utf-8")
    found = validate(root, sql=False)
    assert found.problems == [], [p.render() for p in found.problems]
    return Upstream(engine, run, root)


def _rows(report: Report) -> list[tuple[str, str, str, str]]:
    return sorted(
        (p.code, p.severity, str(p.details.get("column")), str(p.details.get("change"))) for p in report.problems
    )


# change -> (PostgreSQL statement, MariaDB statement, expected rows, exit code)
CHANGES: dict[str, tuple[str, str, list[tuple[str, str, str, str]], int]] = {
    "column added": (
        "ALTER TABLE items ADD COLUMN extra date",
        "ALTER TABLE items ADD COLUMN extra date",
        [("upstream-column-added", "warning", "extra", "added")],
        0,
    ),
    "column dropped": (
        "ALTER TABLE items DROP COLUMN note",
        "ALTER TABLE items DROP COLUMN note",
        [("upstream-column-removed", "error", "note", "removed")],
        2,
    ),
    "skipped column dropped": (
        "ALTER TABLE items DROP COLUMN secret",
        "ALTER TABLE items DROP COLUMN secret",
        [("upstream-skipped-column-removed", "warning", "secret", "removed (skipped)")],
        0,
    ),
    "column retyped to another kind": (
        "ALTER TABLE items ALTER COLUMN qty TYPE text",
        "ALTER TABLE items MODIFY qty text",
        [("upstream-column-retyped", "error", "qty", "retyped")],
        2,
    ),
    "column widened": (
        "ALTER TABLE items ALTER COLUMN qty TYPE bigint",
        "ALTER TABLE items MODIFY qty bigint",
        [("upstream-type-may-not-fit", "warning", "qty", "may not fit")],
        0,
    ),
    "column narrowed": (
        "ALTER TABLE items ALTER COLUMN qty TYPE smallint",
        "ALTER TABLE items MODIFY qty smallint",
        [("upstream-type-fits", "info", "qty", "fits")],
        0,
    ),
    "not null dropped": (
        "ALTER TABLE items ALTER COLUMN code DROP NOT NULL",
        "ALTER TABLE items MODIFY code varchar(20) NULL",
        [("upstream-column-nullable", "warning", "code", "nullable")],
        0,
    ),
    "not null added": (
        "ALTER TABLE items ALTER COLUMN note SET NOT NULL",
        "ALTER TABLE items MODIFY note text NOT NULL",
        [("upstream-column-not-null", "warning", "note", "not null")],
        0,
    ),
    "primary key changed": (
        "ALTER TABLE items DROP CONSTRAINT items_pkey, ADD PRIMARY KEY (id, code)",
        "ALTER TABLE items DROP PRIMARY KEY, ADD PRIMARY KEY (id, code)",
        [("upstream-key-changed", "warning", "(primary key)", "changed")],
        0,
    ),
    "unique dropped and added": (
        "ALTER TABLE items DROP CONSTRAINT items_code_key, ADD CONSTRAINT items_qty_key UNIQUE (qty)",
        "ALTER TABLE items DROP INDEX code, ADD CONSTRAINT items_qty_key UNIQUE (qty)",
        [
            ("upstream-unique-changed", "warning", "(unique)", "added"),
            ("upstream-unique-changed", "warning", "(unique)", "dropped"),
        ],
        0,
    ),
    "table dropped": (
        "DROP TABLE items",
        "DROP TABLE items",
        [("upstream-table-missing", "error", "(table)", "missing")],
        2,
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_every_kind_of_change_is_caught(upstream: Upstream, change: str) -> None:
    postgres, mysql, rows, exit_code = CHANGES[change]
    upstream.alter(postgres, mysql)
    report = validate(upstream.root, sql=False)
    assert _rows(report) == sorted(rows), [p.render() for p in report.problems]
    assert report.exit_code == exit_code
    for found in report.problems:
        assert found.relation == "up.items"
        assert found.check == "sources"
        assert found.location is not None and str(found.location.path) == "schemas/up/items.yaml"
        if found.code != "upstream-table-missing":
            assert "conveyor bootstrap --update up.items" in (found.hint or "")


def test_a_column_change_points_at_its_line(upstream: Upstream) -> None:
    upstream.alter("ALTER TABLE items DROP COLUMN price", "ALTER TABLE items DROP COLUMN price")
    lines = (upstream.root / "schemas/up/items.yaml").read_text(encoding="utf-8").splitlines()
    (found,) = validate(upstream.root, sql=False).problems
    assert found.location is not None and found.location.line is not None
    assert lines[found.location.line - 1].strip() == "- name: price"
    assert found.details == {"column": "price", "change": "removed", "design": "decimal(10,2)", "upstream": "-"}


def test_the_command_prints_a_diff_table(
    upstream: Upstream, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.alter(
        "ALTER TABLE items DROP COLUMN note, ADD COLUMN extra date",
        "ALTER TABLE items DROP COLUMN note, ADD COLUMN extra date",
    )
    monkeypatch.setitem(cli.commands, "validate", validate_command)
    monkeypatch.setattr(output.stdout, "width", 200)
    with pytest.raises(SystemExit) as exit_info:
        main(["-p", str(upstream.root), "validate"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert "upstream changes:" in out
    table = [" ".join(line.split()) for line in out.splitlines()]
    assert "note removed text - error" in table
    assert "extra added - date nullable warning" in table
    assert err.startswith("Error: validation found 1 error.")


def test_skip_sources_skips_the_upstream(upstream: Upstream) -> None:
    upstream.alter("DROP TABLE items", "DROP TABLE items")
    report = validate(upstream.root, sources=False)
    assert report.problems == []
    assert "sources" not in report.checks
    assert any("--skip-sources" in note for note in report.notes)


def test_an_unreachable_source_is_named_and_its_password_masked(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheme = "postgresql" if upstream.engine == "postgres" else "mysql"
    monkeypatch.setenv("DRIFT_DSN", f"{scheme}://someone:Sup3rSecretPw@127.0.0.1:9/nowhere")
    report = validate(upstream.root, sql=False)
    (found,) = report.problems
    assert found.code == "upstream-unreachable"
    assert found.severity == "error" and report.exit_code == 2
    assert 'source "up" cannot be reached' in found.message
    assert "Sup3rSecretPw" not in found.render()
    assert "***" in found.message
    assert found.location is not None and str(found.location) == "conveyor.yaml:5"


def test_only_selected_tables_are_compared(upstream: Upstream) -> None:
    upstream.alter("DROP TABLE items", "DROP TABLE items")
    other = upstream.root / "schemas" / "mart"
    other.mkdir()
    (other / "x.yaml").write_text("name: mart.x\nkind: view\n", encoding="utf-8")
    (other / "x.sql").write_text("SELECT 1 AS one\n", encoding="utf-8")
    assert validate(upstream.root, ["mart"], sql=False).problems == []
    assert [p.code for p in validate(upstream.root, ["up"], sql=False).problems] == ["upstream-table-missing"]
