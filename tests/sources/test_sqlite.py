"""SQLite as a source: reflection, and exact conversion of every value (or a located error)."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from conveyor import api
from conveyor.design.types import parse_type
from conveyor.errors import ExtractError
from conveyor.sources.base import ReadRequest
from conveyor.sources.sqlite import SqliteSource, map_declared_type

WEIRD = 'weird "name"; drop'


def make_db(path: Path, ddl: str, rows: Sequence[tuple[Any, ...]] = (), table: str = "t") -> Path:
    con = sqlite3.connect(path)
    con.executescript(ddl)
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        quoted = '"' + table.replace('"', '""') + '"'
        con.executemany(f"INSERT INTO {quoted} VALUES ({marks})", rows)
    con.commit()
    con.close()
    return path


def read_column(tmp_path: Path, declared: str, design_type: str, values: list[Any]) -> list[Any]:
    """Store ``values`` in a column of ``declared`` type and read them back as ``design_type``."""
    db = make_db(tmp_path / f"{uuid.uuid4().hex}.db", f"CREATE TABLE t (v {declared});", [(v,) for v in values])
    request = ReadRequest("main", "t", (("v", parse_type(design_type)),), batch_rows=2)
    return [v for b in SqliteSource("src", str(db)).read(request) for v in b.column(0).to_pylist()]


def test_describe_maps_declared_types_and_keys(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "d.db",
        """
        CREATE TABLE t (
            id INTEGER PRIMARY KEY, code VARCHAR(20) NOT NULL UNIQUE, price NUMERIC(10,2), ok BOOLEAN,
            at TIMESTAMPTZ, naive DATETIME, day DATE, tod TIME, u UUID, doc JSON, raw BLOB, ratio REAL,
            a INT, b TEXT, UNIQUE (a, b)
        );
        CREATE TABLE composite (x INTEGER, y TEXT, PRIMARY KEY (y, x));
        """,
    )
    source = SqliteSource("src", str(db))
    assert source.list_tables() == [("main", "composite"), ("main", "t")]
    info = source.describe("main", "t")
    types = {c.name: str(c.type) for c in info.columns}
    assert types == {
        "id": "bigint",
        "code": "text",
        "price": "decimal(10,2)",
        "ok": "boolean",
        "at": "timestamptz",
        "naive": "timestamp",
        "day": "date",
        "tod": "time",
        "u": "uuid",
        "doc": "json",
        "raw": "bytes",
        "ratio": "double",
        "a": "bigint",
        "b": "text",
    }
    not_null = {c.name for c in info.columns if c.not_null}
    assert not_null == {"id", "code"}
    assert info.primary_key == ("id",)
    assert sorted(info.unique) == [("a", "b"), ("code",)]
    assert info.row_estimate == 0
    assert source.describe("main", "composite").primary_key == ("y", "x")


@pytest.mark.parametrize("declared", ["", "NUMERIC", "DECIMAL", "WHATEVER"])
def test_declared_types_without_an_exact_mapping(declared: str) -> None:
    with pytest.raises(ValueError, match="declared type"):
        map_declared_type(declared)


def test_describe_unknown_table(tmp_path: Path) -> None:
    db = make_db(tmp_path / "d.db", "CREATE TABLE t (v INTEGER);")
    with pytest.raises(ExtractError, match=r'table "main\.nope" does not exist in source "src"'):
        SqliteSource("src", str(db)).describe("main", "nope")


def test_missing_database_file(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="does not exist"):
        SqliteSource("src", str(tmp_path / "absent.db")).list_tables()
    assert not (tmp_path / "absent.db").exists()


def test_decimals_stored_as_real_come_out_exactly(tmp_path: Path) -> None:
    values = [0.1, 1234567.89, -0.01, 0.3, 99999999.99, 7, "12.50", None]
    assert read_column(tmp_path, "NUMERIC(10,2)", "decimal(10,2)", values) == [
        Decimal("0.10"),
        Decimal("1234567.89"),
        Decimal("-0.01"),
        Decimal("0.30"),
        Decimal("99999999.99"),
        Decimal("7.00"),
        Decimal("12.50"),
        None,
    ]


@pytest.mark.parametrize("value", [0.123, 0.1 + 0.2, 1.005e-3])
def test_real_with_more_decimals_than_the_scale_is_an_error(tmp_path: Path, value: float) -> None:
    with pytest.raises(ExtractError) as info:
        read_column(tmp_path, "REAL", "decimal(10,2)", [1.5, value])
    assert info.value.render().startswith("main.t.v (decimal(10,2)): ")


def test_decimal_too_large_for_the_precision_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match=r"main\.t\.v \(decimal\(5,2\)\)"):
        read_column(tmp_path, "REAL", "decimal(5,2)", [123456.5])


def test_booleans(tmp_path: Path) -> None:
    assert read_column(tmp_path, "BOOLEAN", "boolean", [1, 0, None, 1]) == [True, False, None, True]


@pytest.mark.parametrize("bad", [2, -1, "true", "t", 0.5])
def test_booleans_other_than_0_and_1_are_errors(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ExtractError) as info:
        read_column(tmp_path, "BOOLEAN", "boolean", [0, bad])
    assert "main.t.v (boolean)" in info.value.message
    assert "is not a boolean" in info.value.message


def test_timestamptz_with_offsets_become_utc_instants(tmp_path: Path) -> None:
    values = [
        "2024-01-02T03:04:05.123456+02:00",
        "2024-06-30 23:59:59-05:00",
        "2024-03-31T01:30:00.000001Z",
        "2024-01-01T00:00:00+0530",
        "2024-12-31 12:00:00",  # no offset: UTC
        None,
    ]
    assert read_column(tmp_path, "TIMESTAMPTZ", "timestamptz", values) == [
        datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=UTC),
        datetime(2024, 7, 1, 4, 59, 59, tzinfo=UTC),
        datetime(2024, 3, 31, 1, 30, 0, 1, tzinfo=UTC),
        datetime(2023, 12, 31, 18, 30, tzinfo=UTC),
        datetime(2024, 12, 31, 12, 0, tzinfo=UTC),
        None,
    ]


def test_naive_timestamps_dates_and_times(tmp_path: Path) -> None:
    assert read_column(tmp_path, "DATETIME", "timestamp", ["2024-02-29 23:59:59.999999", "2024-01-01T00:00:00"]) == [
        datetime(2024, 2, 29, 23, 59, 59, 999999),
        datetime(2024, 1, 1),
    ]
    assert read_column(tmp_path, "DATE", "date", ["2024-02-29", "1970-01-01", None]) == [
        date(2024, 2, 29),
        date(1970, 1, 1),
        None,
    ]
    assert read_column(tmp_path, "TIME", "time", ["23:59:59.999999", "00:00", "12:34:56"]) == [
        time(23, 59, 59, 999999),
        time(0, 0),
        time(12, 34, 56),
    ]


@pytest.mark.parametrize(
    ("declared", "design_type", "bad"),
    [
        ("DATETIME", "timestamp", "2024-01-01T00:00:00+02:00"),  # an offset in a naive column
        ("DATE", "date", "2024-02-30"),
        ("TIME", "time", "25:00:00"),
        ("TIMESTAMPTZ", "timestamptz", 1700000000),  # a number, not ISO text
        ("UUID", "uuid", "not-a-uuid"),
        ("INTEGER", "smallint", 70000),
        ("TEXT", "text", b"\x00bytes"),
    ],
)
def test_values_that_do_not_fit_are_located_errors(tmp_path: Path, declared: str, design_type: str, bad: Any) -> None:
    with pytest.raises(ExtractError) as info:
        read_column(tmp_path, declared, design_type, [None, bad])
    assert info.value.message.startswith(f"main.t.v ({design_type}): ")


def test_uuid_text_and_bytes(tmp_path: Path) -> None:
    text = "12345678-1234-5678-1234-567812345678"
    raw = uuid.UUID("87654321-4321-8765-4321-876543218765")
    assert read_column(tmp_path, "UUID", "uuid", [text, raw.bytes, text.upper(), None]) == [
        uuid.UUID(text),
        raw,
        uuid.UUID(text),
        None,
    ]


def test_nulls_in_every_column(tmp_path: Path) -> None:
    columns = {
        "a": ("INTEGER", "bigint"),
        "b": ("NUMERIC(10,2)", "decimal(10,2)"),
        "c": ("BOOLEAN", "boolean"),
        "d": ("TIMESTAMPTZ", "timestamptz"),
        "e": ("DATETIME", "timestamp"),
        "f": ("DATE", "date"),
        "g": ("TIME", "time"),
        "h": ("UUID", "uuid"),
        "i": ("TEXT", "text"),
        "j": ("JSON", "json"),
        "k": ("BLOB", "bytes"),
        "l": ("REAL", "double"),
    }
    ddl = "CREATE TABLE t (" + ", ".join(f"{n} {d}" for n, (d, _) in columns.items()) + ");"
    db = make_db(tmp_path / "n.db", ddl, [(None,) * len(columns)] * 3)
    request = ReadRequest("main", "t", tuple((n, parse_type(t)) for n, (_, t) in columns.items()))
    batches = list(SqliteSource("src", str(db)).read(request))
    assert len(batches) == 1 and batches[0].schema.equals(request.arrow_schema)
    assert batches[0].to_pylist() == [dict.fromkeys(columns)] * 3


def test_read_batches_and_filter(tmp_path: Path) -> None:
    db = make_db(tmp_path / "b.db", "CREATE TABLE t (v INTEGER);", [(i,) for i in range(10)])
    request = ReadRequest("main", "t", (("v", parse_type("bigint")),), where="v >= ?", params=(3,), batch_rows=3)
    batches = list(SqliteSource("src", str(db)).read(request))
    assert [b.num_rows for b in batches] == [3, 3, 1]
    assert [v for b in batches for v in b.column(0).to_pylist()] == list(range(3, 10))


def test_real_in_an_integer_column_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match=r"main\.t\.v \(bigint\)"):
        read_column(tmp_path, "INTEGER", "bigint", [1, 1.5])


def test_path_with_uri_characters_reads_the_right_file(tmp_path: Path) -> None:
    folder = tmp_path / "a#b"
    folder.mkdir()
    db = make_db(folder / "up?.db", "CREATE TABLE t (v INTEGER);", [(1,)])
    try:
        assert SqliteSource("src", str(db)).list_tables() == [("main", "t")]
    finally:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a#b"], "a stray database file was created"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hostile_table_and_column_names_work_and_harm_nothing(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "w.db",
        f'CREATE TABLE "{WEIRD.replace(chr(34), chr(34) * 2)}" ("select" INTEGER PRIMARY KEY, "from" TEXT UNIQUE);'
        "CREATE TABLE drop_me (v INTEGER); INSERT INTO drop_me VALUES (1);",
        [(1, "ä"), (2, None)],
        table=WEIRD,
    )
    before = _sha(db)
    source = SqliteSource("src", str(db))
    assert ("main", WEIRD) in source.list_tables()
    info = source.describe("main", WEIRD)
    assert [c.name for c in info.columns] == ["select", "from"]
    assert info.primary_key == ("select",) and info.unique == (("from",),)
    request = ReadRequest("main", WEIRD, tuple((c.name, c.type) for c in info.columns), order_by=("select",))
    assert [r for b in source.read(request) for r in b.to_pylist()] == [
        {"select": 1, "from": "ä"},
        {"select": 2, "from": None},
    ]
    assert _sha(db) == before
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM drop_me").fetchone() == (1,)
    con.close()


def test_hostile_names_through_extract_and_load(make_project: Callable[..., Path]) -> None:
    root = make_project(
        designs={
            "shop/weird.yaml": f"name: shop.weird\nsource_table: 'main.{WEIRD}'\ncolumns:\n"
            "  - name: select\n    type: bigint\n  - name: from\n    type: text\n"
            "constraints:\n  primary_key: [select]\n",
        }
    )
    make_db(
        root / "upstream.db",
        f'CREATE TABLE "{WEIRD.replace(chr(34), chr(34) * 2)}" ("select" INTEGER PRIMARY KEY, "from" TEXT);',
        [(1, "it's"), (2, 'say "hi"')],
        table=WEIRD,
    )
    project = api.open_project(root)
    outcome = api.run(project)
    assert outcome.ok, (outcome.extract, outcome.build)
    assert (root / "lake" / "data" / "shop" / "shop.weird").is_dir()  # the relation owns the folder
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute('SELECT "select", "from" FROM shop.weird ORDER BY 1').fetchall()
        orders = con.execute("SELECT count(*) FROM shop.orders").fetchone()
    finally:
        con.close()
    assert rows == [(1, "it's"), (2, 'say "hi"')]
    assert orders == (5,)
