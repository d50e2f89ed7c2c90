"""Bootstrap against the real PostgreSQL service (a fresh database per test)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import yaml

from conveyor import api
from conveyor.bootstrap import bootstrap
from conveyor.project import Project

from .conftest import by_table, files_of, write_project

pytestmark = pytest.mark.postgres

UPSTREAM = """
CREATE SCHEMA archive;
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE customers (
    id integer PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name varchar(100) NOT NULL,
    code char(3),
    balance numeric(12,2) NOT NULL DEFAULT 0,
    ratio real,
    score double precision,
    tiny smallint,
    big bigint,
    active boolean,
    born date,
    wakes time,
    created_at timestamp NOT NULL DEFAULT now(),
    updated_at timestamptz,
    token uuid UNIQUE,
    profile jsonb,
    raw json,
    photo bytea,
    labels text[],
    nums integer[],
    feeling mood,
    free numeric
);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id integer NOT NULL, amount numeric(10,2), note text);
CREATE TABLE archive.orders (id bigint PRIMARY KEY, amount numeric(10,2));
CREATE TABLE line_items (
    order_id bigint NOT NULL,
    line integer NOT NULL,
    seq bigint NOT NULL UNIQUE,
    qty integer,
    PRIMARY KEY (order_id, line),
    UNIQUE (order_id, qty)
);
CREATE TABLE sessions (id uuid PRIMARY KEY, started timestamptz);
CREATE TABLE prices (id numeric(10,0) PRIMARY KEY, price numeric(8,3));
CREATE TABLE tmp_scratch (x integer);
CREATE VIEW big_orders AS SELECT id, amount FROM orders WHERE amount > 100;
"""

SOURCE = """
pg:
  type: postgres
  dsn: ${BS_PG_DSN}
  include: ["public.*", "archive.*", "audit.*"]
  exclude: ["public.tmp_*"]
"""

ALL = [
    "pg.archive_orders",
    "pg.big_orders",
    "pg.customers",
    "pg.line_items",
    "pg.orders",
    "pg.prices",
    "pg.sessions",
]


@pytest.fixture
def project_root(tmp_path: Path, pg: psycopg.Connection[Any], pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    pg.execute(UPSTREAM.encode())
    monkeypatch.setenv("BS_PG_DSN", pg_dsn)
    return write_project(tmp_path / "proj", SOURCE)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_many_types_keys_globs_and_name_clashes(project_root: Path, conveyor) -> None:
    result = conveyor(project_root, "bootstrap", "--format", "json")
    assert result.code == 0, result.stderr
    rows = by_table(result.json())
    assert sorted(rows) == ALL
    assert {r["action"] for r in rows.values()} == {"created"}
    assert 'source "pg": include pattern "audit.*" matches no upstream table' in result.stderr

    # same table name in two upstream schemas: the default schema keeps the plain name
    assert rows["pg.orders"]["upstream"] == "public.orders"
    assert rows["pg.archive_orders"]["upstream"] == "archive.orders"
    assert rows["pg.archive_orders"]["notes"] == ["named archive_orders: orders is taken by upstream public.orders"]
    assert "archive_orders" in result.stderr

    customers = load(project_root / "schemas/pg/customers.yaml")
    assert customers["source_table"] == "public.customers"
    assert [(c["name"], c["type"], c.get("not_null", False)) for c in customers["columns"]] == [
        ("id", "integer", True),
        ("email", "text", True),
        ("name", "text", True),
        ("code", "char(3)", False),
        ("balance", "decimal(12,2)", True),
        ("ratio", "real", False),
        ("score", "double", False),
        ("tiny", "smallint", False),
        ("big", "bigint", False),
        ("active", "boolean", False),
        ("born", "date", False),
        ("wakes", "time", False),
        ("created_at", "timestamp", True),
        ("updated_at", "timestamptz", False),
        ("token", "uuid", False),
        ("profile", "json", False),
        ("raw", "json", False),
        ("photo", "bytes", False),
        ("labels", "text[]", False),
        ("nums", "integer[]", False),
        ("feeling", "text", False),
        ("free", "decimal(38,9)", False),
    ]
    assert all("not_null" not in c or c["not_null"] is True for c in customers["columns"])
    assert customers["constraints"] == {"primary_key": ["id"], "unique": [["email"], ["token"]]}
    assert customers["extract"] == {"split_by": "id"}

    line_items = load(project_root / "schemas/pg/line_items.yaml")
    assert line_items["constraints"]["primary_key"] == ["order_id", "line"]
    assert sorted(line_items["constraints"]["unique"]) == [["order_id", "qty"], ["seq"]]
    assert line_items["extract"] == {"split_by": "seq"}  # composite pk: the not-null integer unique column
    assert load(project_root / "schemas/pg/sessions.yaml")["extract"] == {"split_by": "id"}  # uuid pk
    assert "extract" not in load(project_root / "schemas/pg/prices.yaml")  # decimal pk: left to ctid ranges
    view = load(project_root / "schemas/pg/big_orders.yaml")
    assert "constraints" not in view and "extract" not in view
    assert not (project_root / "schemas/pg/tmp_scratch.yaml").exists()

    project = Project.load(project_root)
    assert sorted(project.relations) == ALL
    assert project.settings.sources["pg"].dsn == "${BS_PG_DSN}"  # the secret stays out of the project files


def test_update_after_alter_table_keeps_hand_edits(project_root: Path, pg: psycopg.Connection[Any], conveyor) -> None:
    assert conveyor(project_root, "bootstrap").code == 0
    path = project_root / "schemas/pg/customers.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "name: pg.customers\n", "name: pg.customers\n# owned by the CRM team\ndescription: People who buy\n"
    )
    text = text.replace(
        "  - name: photo\n    type: bytes\n", "  - name: photo\n    type: bytes\n    skipped: true  # too big\n"
    )
    text = text.replace(
        "  - name: email\n    type: text\n    not_null: true\n",
        "  - name: email\n    type: text\n    not_null: true\n    description: Login address\n",
    )
    path.write_text(text, encoding="utf-8")

    pg.execute(
        b"""
        ALTER TABLE customers ADD COLUMN phone varchar(30);
        ALTER TABLE customers DROP COLUMN raw;
        ALTER TABLE customers ALTER COLUMN tiny TYPE integer;
        ALTER TABLE customers ALTER COLUMN name DROP NOT NULL;
        ALTER TABLE customers DROP CONSTRAINT customers_token_key;
        ALTER TABLE customers ADD CONSTRAINT customers_code_key UNIQUE (code, id);
        DROP TABLE sessions;
        """
    )
    result = conveyor(project_root, "bootstrap", "--update", "--format", "json")
    assert result.code == 0, result.stderr
    rows = by_table(result.json())
    assert rows["pg.customers"]["action"] == "updated"
    assert rows["pg.customers"]["changes"] == [
        "~name nullable",
        "~tiny type smallint->integer",
        "-raw",
        "+phone",
        "+unique (code, id)",
        "-unique (token)",
    ]
    assert rows["pg.sessions"]["action"] == "orphaned"
    assert '"pg.sessions" (schemas/pg/sessions.yaml) extracts public.sessions, which does not exist' in result.stderr
    assert {rows[n]["action"] for n in ALL if n not in ("pg.customers", "pg.sessions")} == {"unchanged"}

    merged = path.read_text(encoding="utf-8")
    assert "# owned by the CRM team\ndescription: People who buy\n" in merged
    assert "    skipped: true  # too big\n" in merged
    assert "    description: Login address\n" in merged
    data = load(path)
    names = [c["name"] for c in data["columns"]]
    assert names[-1] == "phone" and "raw" not in names and names.index("photo") == 16
    assert data["columns"][2] == {"name": "name", "type": "text"}
    assert data["columns"][7] == {"name": "tiny", "type": "integer"}
    assert data["constraints"] == {"primary_key": ["id"], "unique": [["code", "id"], ["email"]]}
    design = Project.load(project_root).relations["pg.customers"].design
    assert next(c for c in design.columns if c.name == "photo").skipped

    table = conveyor(project_root, "bootstrap", "--update", "pg.customers", "pg.sessions")
    assert table.code == 0
    assert "unchanged" in table.stdout and "orphaned" in table.stdout


def test_update_twice_is_unchanged_and_byte_identical(project_root: Path) -> None:
    bootstrap(Project.load(project_root))
    before = files_of(project_root)
    for _ in range(2):
        report = bootstrap(Project.load(project_root), update=True)
        assert report.counts() == {"unchanged": len(ALL)}
        assert files_of(project_root) == before


UNMAPPED = {  # native type -> a value
    "tsvector": "'a':1 'fat':2",
    "interval": "1 year 2 mons -3 days 04:05:06.000007",
    "money": "12.34",
    "inet": "10.0.0.1/8",
    "cidr": "10.0.0.0/8",
    "macaddr": "08:00:2b:01:02:03",
    "time with time zone": "12:00:00.5+02",
    "point": "(1.5,2)",
    "interval[]": '{"1 day","2 hours"}',
    "numeric(50,20)": "123456789012345678901234567890.12345678901234567890",
}


def test_columns_without_an_exact_type_are_written_visibly_and_extract_exactly(
    project_root: Path, pg: psycopg.Connection[Any], conveyor
) -> None:
    """Every such column is text (the server's text form) with a comment; one warning names them all."""
    names = {native: f"c{i}" for i, native in enumerate(UNMAPPED)}
    pg.execute(
        ("CREATE TABLE docs (id integer PRIMARY KEY, " + ", ".join(f"{n} {t}" for t, n in names.items()) + ")").encode()
    )
    pg.execute(
        f"INSERT INTO docs VALUES (1, {', '.join(['%s'] * len(UNMAPPED))}), (2{', NULL' * len(UNMAPPED)})".encode(),
        list(UNMAPPED.values()),
    )
    result = conveyor(project_root, "bootstrap", "--format", "json")
    assert result.code == 0, result.stderr
    assert by_table(result.json())["pg.docs"]["action"] == "created"
    text = (project_root / "schemas/pg/docs.yaml").read_text()
    design = yaml.safe_load(text)
    assert [c.get("type") for c in design["columns"][1:]] == ["text"] * len(UNMAPPED)
    for native, name in names.items():
        assert f"{native} has no exact design type" in text or f"{native} is wider" in text, native
        # every column is named in the one warning
        assert f"pg.docs.{name} ({native}) as text" in result.stderr, native
    assert result.stderr.count("column(s) have no exact design type") == 1

    outcome = api.run(Project.load(project_root), ["pg.docs"])
    assert outcome.ok, outcome
    expected = pg.execute(
        ("SELECT " + ", ".join(f"{n}::text" for n in names.values()) + " FROM docs ORDER BY id").encode()
    ).fetchall()
    with duckdb.connect(str(project_root / "warehouse/dev.duckdb"), read_only=True) as con:
        got = con.execute(f"SELECT {', '.join(names.values())} FROM pg.docs ORDER BY id").fetchall()
    assert got == expected
    assert "upstream-" not in conveyor(project_root, "validate").stdout


def test_selection_globs_over_warehouse_names(project_root: Path, conveyor) -> None:
    result = conveyor(project_root, "bootstrap", "pg.*orders", "--format", "json")
    assert result.code == 0, result.stderr
    assert sorted(r["table"] for r in result.json()) == ["pg.archive_orders", "pg.big_orders", "pg.orders"]
    bad = conveyor(project_root, "bootstrap", "pg.archive.orders")
    assert bad.code == 2 and "matches nothing" in bad.stderr


def test_unset_dsn_variable_is_bad_input(project_root: Path, conveyor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BS_PG_DSN")
    result = conveyor(project_root, "bootstrap")
    assert result.code == 2 and "BS_PG_DSN" in result.stderr
    assert not (project_root / "schemas").exists()


def test_bootstrapped_postgres_tables_extract_and_load(
    tmp_path: Path, pg: psycopg.Connection[Any], pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg.execute(
        b"""
        CREATE SCHEMA archive;
        CREATE TABLE orders (id bigint PRIMARY KEY, customer_id integer NOT NULL, amount numeric(10,2),
                             placed timestamptz, note text UNIQUE);
        CREATE TABLE archive.orders (id bigint PRIMARY KEY, amount numeric(10,2));
        INSERT INTO orders VALUES (1, 7, 10.50, '2024-01-01 10:00+02', 'a'), (2, 8, NULL, NULL, NULL);
        INSERT INTO archive.orders VALUES (99, 12345678.90);
        """
    )
    monkeypatch.setenv("BS_PG_DSN", pg_dsn)
    root = write_project(tmp_path / "proj", "pg:\n  type: postgres\n  dsn: ${BS_PG_DSN}\n  target_schema: raw\n")
    report = bootstrap(Project.load(root))
    assert report.ok and sorted(t.table for t in report.tables) == ["raw.archive_orders", "raw.orders"]
    outcome = api.run(Project.load(root))
    assert outcome.ok, outcome.summary()
    with duckdb.connect(str(root / "warehouse/dev.duckdb"), read_only=True) as con:
        assert con.execute("SELECT id, customer_id, amount, note FROM raw.orders ORDER BY id").fetchall() == [
            (1, 7, Decimal("10.50"), "a"),
            (2, 8, None, None),
        ]
        assert con.execute("SELECT * FROM raw.archive_orders").fetchall() == [(99, Decimal("12345678.90"))]


def test_upstream_comments_become_descriptions(project_root: Path, pg: psycopg.Connection[Any]) -> None:
    pg.execute(b"COMMENT ON TABLE orders IS 'Orders placed'; COMMENT ON COLUMN orders.note IS 'Free text'")
    bootstrap(Project.load(project_root), ["pg.orders"])
    data = load(project_root / "schemas/pg/orders.yaml")
    assert data["description"] == "Orders placed"
    assert next(c for c in data["columns"] if c["name"] == "note")["description"] == "Free text"
    assert "description" not in next(c for c in data["columns"] if c["name"] == "id")

    # --update fills a missing description from upstream but never replaces one written by hand
    path = project_root / "schemas/pg/orders.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("Orders placed", "Our orders"), encoding="utf-8")
    pg.execute(b"COMMENT ON COLUMN orders.amount IS 'In EUR'; COMMENT ON TABLE orders IS 'Changed upstream'")
    report = bootstrap(Project.load(project_root), ["pg.orders"], update=True)
    assert report.tables[0].changes == ["~amount description"]
    data = load(path)
    assert data["description"] == "Our orders"
    assert next(c for c in data["columns"] if c["name"] == "amount")["description"] == "In EUR"
