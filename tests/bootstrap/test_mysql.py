"""Bootstrap against the real MariaDB/MySQL service (a fresh database per test).

The server lists every database, so each project's include globs name its own database.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from conveyor import api
from conveyor.bootstrap import bootstrap
from conveyor.project import Project

from .conftest import by_table, files_of, write_project

pytestmark = pytest.mark.mysql

UPSTREAM = [
    """CREATE TABLE customers (
        id INT PRIMARY KEY,
        email VARCHAR(200) NOT NULL UNIQUE,
        name VARCHAR(100) NOT NULL,
        code CHAR(3),
        active TINYINT(1),
        tiny TINYINT,
        small SMALLINT,
        medium MEDIUMINT,
        big BIGINT UNSIGNED,
        balance DECIMAL(12,2) NOT NULL DEFAULT 0,
        ratio FLOAT,
        score DOUBLE,
        born DATE,
        wakes TIME,
        created_at DATETIME(6) NOT NULL,
        updated_at TIMESTAMP NULL,
        since YEAR,
        profile JSON,
        bio TEXT,
        size ENUM('s', 'm', 'l'),
        photo BLOB,
        digest BINARY(16)
    )""",
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(10,2), note TEXT)",
    """CREATE TABLE line_items (
        order_id BIGINT NOT NULL,
        line INT NOT NULL,
        seq BIGINT NOT NULL,
        qty INT,
        PRIMARY KEY (order_id, line),
        UNIQUE KEY seq_key (seq)
    )""",
    "CREATE TABLE tmp_scratch (x INT)",
]


@pytest.fixture
def project_root(
    tmp_path: Path, my: Callable[..., list[tuple[Any, ...]]], my_db: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    for statement in UPSTREAM:
        my(statement)
    monkeypatch.setenv("BS_MY_DSN", f"mysql://root@127.0.0.1:3306/{my_db}")
    return write_project(
        tmp_path / "proj",
        f"""
        shop:
          type: mysql
          dsn: ${{BS_MY_DSN}}
          target_schema: my
          include: ["{my_db}.*", "{my_db}_audit.*"]
          exclude: ["*.tmp_*"]
        """,
    )


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_many_types_keys_and_globs(project_root: Path, my_db: str, conveyor) -> None:
    result = conveyor(project_root, "bootstrap", "--format", "json")
    assert result.code == 0, result.stderr
    rows = by_table(result.json())
    assert sorted(rows) == ["my.customers", "my.line_items", "my.orders"]
    assert rows["my.orders"]["upstream"] == f"{my_db}.orders"
    assert f'include pattern "{my_db}_audit.*" matches no upstream table' in result.stderr

    customers = load(project_root / "schemas/my/customers.yaml")
    assert customers["source_table"] == f"{my_db}.customers"
    assert [(c["name"], c["type"], c.get("not_null", False)) for c in customers["columns"]] == [
        ("id", "integer", True),
        ("email", "text", True),
        ("name", "text", True),
        ("code", "text", False),
        ("active", "boolean", False),
        ("tiny", "tinyint", False),
        ("small", "smallint", False),
        ("medium", "integer", False),
        ("big", "ubigint", False),
        ("balance", "decimal(12,2)", True),
        ("ratio", "real", False),
        ("score", "double", False),
        ("born", "date", False),
        ("wakes", "time", False),
        ("created_at", "timestamp", False),  # NOT NULL, but a zero date reads as NULL (zero_dates: null)
        ("updated_at", "timestamptz", False),
        ("since", "smallint", False),
        ("profile", "json", False),
        ("bio", "text", False),
        ("size", "text", False),
        ("photo", "bytes", False),
        ("digest", "bytes", False),
    ]
    assert customers["constraints"] == {"primary_key": ["id"], "unique": [["email"]]}
    assert customers["extract"] == {"split_by": "id"}
    line_items = load(project_root / "schemas/my/line_items.yaml")
    assert line_items["constraints"] == {"primary_key": ["order_id", "line"], "unique": [["seq"]]}
    assert line_items["extract"] == {"split_by": "seq"}
    assert not (project_root / "schemas/my/tmp_scratch.yaml").exists()
    assert sorted(Project.load(project_root).relations) == ["my.customers", "my.line_items", "my.orders"]


def test_update_after_alter_table_keeps_hand_edits(
    project_root: Path, my: Callable[..., list[tuple[Any, ...]]], my_db: str, conveyor
) -> None:
    assert conveyor(project_root, "bootstrap").code == 0
    path = project_root / "schemas/my/customers.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("name: my.customers\n", "name: my.customers\ndescription: People  # hand written\n")
    text = text.replace("  - name: bio\n    type: text\n", "  - name: bio\n    type: text\n    skipped: true\n")
    path.write_text(text, encoding="utf-8")

    my("ALTER TABLE customers ADD COLUMN phone VARCHAR(30) NOT NULL DEFAULT ''")
    my("ALTER TABLE customers DROP COLUMN photo")
    my("ALTER TABLE customers MODIFY small INT")
    my("ALTER TABLE customers MODIFY balance DECIMAL(14,4) NOT NULL")
    my("DROP TABLE orders")

    result = conveyor(project_root, "bootstrap", "--update", "--format", "json")
    assert result.code == 0, result.stderr
    rows = by_table(result.json())
    assert rows["my.customers"]["changes"] == [
        "~small type smallint->integer",
        "~balance type decimal(12,2)->decimal(14,4)",
        "-photo",
        "+phone",
    ]
    assert rows["my.orders"]["action"] == "orphaned"
    assert rows["my.orders"]["upstream"] == f"{my_db}.orders"
    assert rows["my.line_items"]["action"] == "unchanged"

    merged = path.read_text(encoding="utf-8")
    assert "description: People  # hand written\n" in merged
    assert "  - name: bio\n    type: text\n    skipped: true\n" in merged
    data = load(path)
    assert data["columns"][-1] == {"name": "phone", "type": "text", "not_null": True}
    assert "photo" not in [c["name"] for c in data["columns"]]
    Project.load(project_root)

    before = files_of(project_root)
    again = bootstrap(Project.load(project_root), update=True)
    assert again.counts() == {"unchanged": 2, "orphaned": 1}
    assert files_of(project_root) == before


def test_a_spatial_column_is_written_as_wkt_with_a_comment(
    project_root: Path, my: Callable[..., list[tuple[Any, ...]]], conveyor
) -> None:
    my("CREATE TABLE places (id INT PRIMARY KEY, name TEXT, location POINT, area POLYGON)")
    my("INSERT INTO places VALUES (1, 'a', POINT(1e0/3, 2), ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'))")
    result = conveyor(project_root, "bootstrap", "--format", "json")
    assert result.code == 0, result.stderr
    assert by_table(result.json())["my.places"]["action"] == "created"
    text = (project_root / "schemas/my/places.yaml").read_text()
    assert [c.get("type") for c in yaml.safe_load(text)["columns"]] == ["integer", "text", "text", "text"]
    assert "point has no exact design type: text is WKT" in text and "SRID is not kept" in text
    assert "my.places.location (point) as text, my.places.area (polygon) as text" in result.stderr
    outcome = api.run(Project.load(project_root), ["my.places"])
    assert outcome.ok, outcome
    with duckdb.connect(str(project_root / "warehouse/dev.duckdb"), read_only=True) as con:
        got = con.execute("SELECT location, area FROM my.places").fetchall()
    assert got == my("SELECT ST_AsText(location), ST_AsText(area) FROM places")


def test_bootstrapped_mysql_tables_extract_and_load(
    project_root: Path, my: Callable[..., list[tuple[Any, ...]]]
) -> None:
    my("INSERT INTO orders VALUES (1, 7, 10.50, 'a'), (2, 8, NULL, NULL)")
    my("INSERT INTO line_items VALUES (1, 1, 100, 3)")
    my("INSERT INTO customers (id, email, name, balance, created_at) VALUES (7, 'a@x', 'Ann', 1.25, '2024-01-01')")
    report = bootstrap(Project.load(project_root))
    assert report.ok
    outcome = api.run(Project.load(project_root))
    assert outcome.ok, outcome.summary()
    with duckdb.connect(str(project_root / "warehouse/dev.duckdb"), read_only=True) as con:
        assert con.execute("SELECT id, amount, note FROM my.orders ORDER BY id").fetchall() == [
            (1, Decimal("10.50"), "a"),
            (2, None, None),
        ]
        assert con.execute("SELECT id, name, balance FROM my.customers").fetchall() == [(7, "Ann", Decimal("1.25"))]


def test_upstream_comments_become_descriptions(project_root: Path, my: Callable[..., list[tuple[Any, ...]]]) -> None:
    my("ALTER TABLE orders COMMENT = 'Orders placed'")
    my("ALTER TABLE orders MODIFY note TEXT COMMENT 'Free text'")
    bootstrap(Project.load(project_root), ["my.orders"])
    data = load(project_root / "schemas/my/orders.yaml")
    assert data["description"] == "Orders placed"
    assert next(c for c in data["columns"] if c["name"] == "note")["description"] == "Free text"
    assert "description" not in next(c for c in data["columns"] if c["name"] == "id")
