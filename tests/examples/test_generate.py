"""The bundled example project ``examples/shop``: its data generator, designs and SQL.

These tests need neither the Conveyor CLI nor a lake: they load the generated SQLite
tables straight into an in-memory DuckDB, typed as the designs say, and build every
transformation in dependency order, checking what the build would check.
"""

from __future__ import annotations

import graphlib
import importlib.util
import os
import re
import sqlite3
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from conveyor.config.settings import ProjectSettings
from conveyor.config.yamlfile import load_yaml, validate
from conveyor.design.models import TableDesign
from conveyor.design.types import SqlType, parse_type

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop"
#: CONVEYOR_SHOP_SCALE=1 runs everything on the full-size data set (about 15 s)
SCALE = float(os.environ.get("CONVEYOR_SHOP_SCALE", "0.05"))
SOURCE_SCHEMA = "shop"
#: columns holding money, by name; all of them must be DECIMAL in the warehouse
MONEY = re.compile(
    r"^(?!is_).*(amount|price|revenue|total|fee|refunds|gross|given|received|difference|value|"
    r"per_customer|avg)$"
)
TZ_TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$")


def _import_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shop_example_generate", EXAMPLE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generator = _import_generator()


def _designs() -> dict[str, TableDesign]:
    designs = {}
    for path in sorted((EXAMPLE / "schemas").rglob("*.yaml")):
        design = validate(TableDesign, load_yaml(path), str(path))
        assert design.name == f"{path.parent.name}.{path.stem}", f"{path}: name does not match the path"
        designs[design.name] = design
    return designs


DESIGNS = _designs()
SETTINGS = validate(ProjectSettings, load_yaml(EXAMPLE / "conveyor.yaml"), "conveyor.yaml")


def _kind(design: TableDesign) -> str:
    return design.kind or ("source" if design.schema_name == SOURCE_SCHEMA else "ctas")


SOURCES = {name: d for name, d in DESIGNS.items() if _kind(d) == "source"}
RELATIONS = {name: d for name, d in DESIGNS.items() if _kind(d) != "source"}


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("shop") / "shop.db"
    return path, generator.generate(path, scale=SCALE, seed=42)


def _rows(path: Path, sql: str, *params: object) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _dump(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


# ----------------------------------------------------------------------- generator


def test_same_seed_and_scale_give_identical_content(tmp_path: Path, shop_db: tuple[Path, dict]) -> None:
    first, counts = shop_db
    second = tmp_path / "again.db"
    assert generator.generate(second, scale=SCALE, seed=42) == counts
    assert _dump(first) == _dump(second)  # every statement and value, type included


def test_another_seed_gives_other_rows(tmp_path: Path, shop_db: tuple[Path, dict]) -> None:
    other = tmp_path / "other.db"
    generator.generate(other, scale=SCALE, seed=7)
    assert _rows(other, "SELECT * FROM orders LIMIT 50") != _rows(shop_db[0], "SELECT * FROM orders LIMIT 50")


def test_tables_and_row_counts_scale(shop_db: tuple[Path, dict]) -> None:
    path, counts = shop_db
    tables = [t for (t,) in _rows(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    assert len(tables) >= 5
    assert sorted(counts) == tables
    assert {f"{SOURCE_SCHEMA}.{t}" for t in tables} == set(SOURCES)
    assert counts["customers"] == round(5_000 * SCALE)
    assert counts["products"] == round(500 * SCALE)
    assert counts["orders"] == round(60_000 * SCALE)
    assert 3.0 <= counts["order_items"] / counts["orders"] <= 4.2
    assert 0.85 <= counts["payments"] / counts["orders"] <= 1.15
    assert counts["product_reviews"] == round(8_000 * SCALE)


def test_source_designs_match_the_upstream_tables(shop_db: tuple[Path, dict]) -> None:
    path, _ = shop_db
    for design in SOURCES.values():
        assert design.source_table == f"main.{design.table_name}"
        info = _rows(path, f"PRAGMA table_info({design.table_name})")
        assert [c.name for c in design.columns] == [row[1] for row in info]
        for column, (_, name, _, notnull, _, pk) in zip(design.columns, info, strict=True):
            assert column.not_null == bool(notnull or pk), f"{design.name}.{name}: not_null differs"
            assert column.type is not None
        pks = [row[1] for row in info if row[5]]
        assert design.constraints.primary_key == pks
    assert SOURCES["shop.order_items"].extract.split_by == "order_item_id"
    assert SOURCES["shop.order_items"].extract.partitions == 4


def test_nulls_appear_where_promised(shop_db: tuple[Path, dict]) -> None:
    path, _ = shop_db
    nullable = {(design.table_name, c.name) for design in SOURCES.values() for c in design.columns if not c.not_null}
    assert len(nullable) >= 10
    for table, column in sorted(nullable):
        nulls, values = _rows(path, f"SELECT count(*) - count({column}), count({column}) FROM {table}")[0]
        assert nulls > 0 and values > 0, f"{table}.{column}: {nulls} NULLs, {values} values"
    for design in SOURCES.values():
        for c in design.columns:
            if c.not_null:
                (nulls,) = _rows(path, f"SELECT count(*) FROM {design.table_name} WHERE {c.name} IS NULL")[0]
                assert nulls == 0, f"{design.name}.{c.name}"
    # the semantics behind the NULLs
    assert _rows(path, "SELECT count(*) FROM orders WHERE (shipped_on IS NULL) <> (status IN "
                 "('placed', 'paid', 'cancelled'))") == [(0,)]  # fmt: skip
    assert _rows(path, "SELECT count(*) FROM payments WHERE (provider_ref IS NULL) <> (method = 'gift_card')") == [(0,)]
    assert _rows(path, "SELECT count(*) FROM product_reviews WHERE (body IS NULL) <> (sentiment IS NULL)") == [(0,)]


def test_text_is_not_only_ascii(shop_db: tuple[Path, dict]) -> None:
    path, _ = shop_db
    names = [n for (n,) in _rows(path, "SELECT full_name FROM customers")]
    assert any(any(ord(ch) > 127 for ch in n) for n in names)
    scripts = {"Latin-1": range(0x80, 0x250), "Cyrillic": range(0x400, 0x500), "CJK": range(0x4E00, 0xA000)}
    for script, block in scripts.items():
        assert any(any(ord(ch) in block for ch in n) for n in names), f"no {script} names"
    products = "".join(n for (n,) in _rows(path, "SELECT name FROM products"))
    assert any(ord(ch) > 127 for ch in products)
    notes = [n for (n,) in _rows(path, "SELECT notes FROM orders WHERE notes IS NOT NULL")]
    assert any("\n" in n for n in notes) and any('"' in n for n in notes) and any("," in n for n in notes)
    free_text = notes + [n for (n,) in _rows(path, "SELECT nickname FROM customers WHERE nickname IS NOT NULL")]
    assert any(any(ord(ch) > 0xFFFF for ch in text) for text in free_text), "no emoji"
    emails = [e for (e,) in _rows(path, "SELECT email FROM customers")]
    assert all(e.isascii() and e.count("@") == 1 for e in emails)
    assert len(set(emails)) == len(emails)


def test_decimals_fit_their_design_types(shop_db: tuple[Path, dict]) -> None:
    path, _ = shop_db
    checked = 0
    for design in SOURCES.values():
        for c in design.columns:
            sql_type = c.sql_type
            if sql_type.name != "decimal":
                continue
            assert sql_type.precision is not None and sql_type.scale is not None
            for (value,) in _rows(path, f"SELECT {c.name} FROM {design.table_name} WHERE {c.name} IS NOT NULL"):
                assert isinstance(value, int | float)
                exact = Decimal(repr(value))
                exponent = exact.as_tuple().exponent
                assert isinstance(exponent, int) and exponent >= -sql_type.scale, f"{design.name}.{c.name}: {value}"
                assert abs(exact) < Decimal(10) ** (sql_type.precision - sql_type.scale)
                checked += 1
    assert checked > 10_000


def test_timestamps_carry_offsets_and_cross_dst(shop_db: tuple[Path, dict]) -> None:
    path, _ = shop_db
    instants = [t for (t,) in _rows(path, "SELECT ordered_at FROM orders UNION ALL SELECT paid_at FROM payments")]
    assert all(TZ_TEXT.match(t) for t in instants)
    offsets = Counter(t[-6:] for t in instants)
    assert {"+01:00", "+02:00", "+05:30", "-05:00", "+00:00"} <= set(offsets)
    # some orders within three hours of the EU summer time change of 30 March 2025
    change = datetime(2025, 3, 30, 1, tzinfo=UTC)
    parsed = [datetime.fromisoformat(t) for (t,) in _rows(path, "SELECT ordered_at FROM orders")]
    near = [t for t in parsed if abs(t - change) < timedelta(hours=3)]
    assert any(t.utcoffset() == timedelta(hours=1) for t in near)
    assert any(t.utcoffset() == timedelta(hours=2) for t in near)
    created = _rows(path, "SELECT created_at, signup_date FROM customers")
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", c) and c[:10] == d for c, d in created)


def test_rows_are_coherent(shop_db: tuple[Path, dict]) -> None:
    path, _ = shop_db
    orphans = """
        SELECT (SELECT count(*) FROM order_items WHERE order_id NOT IN (SELECT order_id FROM orders)),
               (SELECT count(*) FROM order_items WHERE product_id NOT IN (SELECT product_id FROM products)),
               (SELECT count(*) FROM orders WHERE customer_id NOT IN (SELECT customer_id FROM customers)),
               (SELECT count(*) FROM payments WHERE order_id NOT IN (SELECT order_id FROM orders)),
               (SELECT count(*) FROM orders WHERE order_id NOT IN (SELECT order_id FROM order_items)),
               (SELECT count(*) FROM orders o JOIN customers c USING (customer_id)
                 WHERE substr(o.ordered_at, 1, 10) < c.signup_date)
    """
    assert _rows(path, orphans) == [(0, 0, 0, 0, 0, 0)]
    ids = _rows(path, "SELECT count(*), min(payment_id), max(payment_id) FROM payments")[0]
    assert ids[0] == ids[2] and ids[1] == 1
    refs = [r for (r,) in _rows(path, "SELECT provider_ref FROM payments WHERE provider_ref IS NOT NULL")]
    assert all(str(uuid.UUID(r)) == r for r in refs)
    big = _rows(path, "SELECT min(platform_message_id), typeof(min(platform_message_id)) FROM product_reviews")
    assert big[0][0] > 2**31 and big[0][1] == "integer"


def test_generate_replaces_the_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "upstream" / "shop.db"
    target.parent.mkdir()
    target.write_text("not a database")
    counts = generator.generate(target, scale=0.01, seed=1)
    assert counts["orders"] == 600
    assert sorted(p.name for p in target.parent.iterdir()) == ["shop.db"]  # no temporary file left
    assert _rows(target, "SELECT count(*) FROM orders") == [(600,)]


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "cli.db"
    assert generator.main(["--path", str(target), "--scale", "0.01", "--seed", "3"]) == 0
    assert "orders" in capsys.readouterr().out
    assert _rows(target, "SELECT count(*) FROM customers") == [(50,)]
    assert generator.DEFAULT_PATH == EXAMPLE / "upstream" / "shop.db"


# ------------------------------------------------------------------ transformations


def _sql(design: TableDesign) -> str:
    return (EXAMPLE / "schemas" / design.schema_name / f"{design.table_name}.sql").read_text(encoding="utf-8")


def _references(design: TableDesign) -> Iterator[tuple[str | None, str]]:
    """(schema or None, table) of every table the relation's SQL reads."""
    tree = sqlglot.parse_one(_sql(design), read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not table.db and table.name in ctes:
            continue
        yield (table.db or None), table.name


def _qualified_sql(design: TableDesign) -> str:
    """The relation's SQL printed back by sqlglot, with every table name schema-qualified."""
    tree = sqlglot.parse_one(_sql(design), read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not table.db and table.name not in ctes:
            schema = _resolve(None, table.name, design.schema_name).split(".")[0]
            table.set("db", exp.to_identifier(schema))
    return tree.sql(dialect="duckdb")


def _resolve(schema: str | None, table: str, own: str) -> str:
    if schema is not None:
        return f"{schema}.{table}"
    for candidate in (own, *SETTINGS.defaults.search_path):
        if f"{candidate}.{table}" in DESIGNS:
            return f"{candidate}.{table}"
    raise AssertionError(f"unqualified {table} does not resolve from {own}")


def _dependencies() -> dict[str, set[str]]:
    deps = {}
    for name, design in RELATIONS.items():
        found = {_resolve(s, t, design.schema_name) for s, t in _references(design)}
        assert found <= set(DESIGNS), f"{name} reads unknown tables {found - set(DESIGNS)}"
        deps[name] = found
    return deps


def _levels(deps: dict[str, set[str]]) -> dict[str, int]:
    levels = dict.fromkeys(SOURCES, 0)
    for name in graphlib.TopologicalSorter(deps).static_order():
        if name not in levels:
            levels[name] = 1 + max(levels[d] for d in deps[name])
    return levels


def test_transformation_graph_shape() -> None:
    deps = _dependencies()
    levels = _levels(deps)
    assert len(RELATIONS) >= 7
    kinds = Counter(_kind(d) for d in RELATIONS.values())
    assert kinds["ctas"] >= 3 and kinds["view"] >= 2
    assert max(levels.values()) >= 3
    assert {d.schema_name for d in RELATIONS.values()} == {"analytics", "marts"}
    for name, design in RELATIONS.items():
        sql = _sql(design)
        assert sqlglot.parse_one(sql, read="duckdb").key == "select" or "UNION" in sql.upper()
        assert len(sqlglot.parse(sql, read="duckdb")) == 1, f"{name}: one query only"
        assert design.description and design.tags
        if _kind(design) == "view":
            assert all(c.type is None for c in design.columns), f"{name}: view columns take no type"
        else:
            assert all(c.type is not None for c in design.columns), f"{name}: CTAS columns need a type"
    unqualified = {
        (design.schema_name, _resolve(None, t, design.schema_name))
        for design in RELATIONS.values()
        for s, t in _references(design)
        if s is None
    }
    assert ("analytics", "analytics.order_lines") in unqualified  # own schema
    assert any(own == "marts" and target.startswith("analytics.") for own, target in unqualified)  # search path


def _arrow_column(values: list, sql_type: SqlType) -> pa.Array:
    """Upstream SQLite values as the exact Arrow type of the design (what the lake holds)."""
    if sql_type.name == "decimal":
        return pa.array([None if v is None else Decimal(repr(v)) for v in values], type=sql_type.arrow)
    if sql_type.name == "boolean":
        return pa.array([None if v is None else bool(v) for v in values], type=pa.bool_())
    if sql_type.name in ("date", "timestamp", "timestamptz"):
        return pa.array(values, type=pa.string()).cast(sql_type.arrow)
    if sql_type.name == "uuid":
        storage = pa.array([None if v is None else uuid.UUID(v).bytes for v in values], type=pa.binary(16))
        return pa.ExtensionArray.from_storage(pa.uuid(), storage)
    return pa.array(values, type=sql_type.arrow)


def _duckdb_type(sql_type: SqlType) -> str:
    rendered = sql_type.render("duckdb").upper()
    rendered = re.sub(r"^(VARCHAR|CHAR)\(\d+\)$", "VARCHAR", rendered)
    return {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}.get(rendered, rendered)


@pytest.fixture(scope="module")
def warehouse(shop_db: tuple[Path, dict]) -> Iterator[duckdb.DuckDBPyConnection]:
    path, _ = shop_db
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Kolkata'")  # the SQL must not depend on the session zone
    con.execute(f"CREATE SCHEMA {SOURCE_SCHEMA}")
    upstream = sqlite3.connect(path)
    for design in SOURCES.values():
        columns = design.loaded_columns
        rows = upstream.execute(
            f"SELECT {', '.join(c.name for c in columns)} FROM {design.source_table}"  # main.<table>
        ).fetchall()
        types = [parse_type(c.type or "") for c in columns]  # .arrow is the type the lake stores
        table = pa.table({c.name: _arrow_column([r[i] for r in rows], types[i]) for i, c in enumerate(columns)})
        con.register("incoming", table)
        con.execute(f"CREATE TABLE {design.name} AS SELECT * FROM incoming")
        con.unregister("incoming")
    upstream.close()
    deps = _dependencies()
    for schema in sorted({d.schema_name for d in RELATIONS.values()}):
        con.execute(f"CREATE SCHEMA {schema}")
    for name in graphlib.TopologicalSorter(deps).static_order():
        design = DESIGNS[name]
        if name in SOURCES:
            continue
        search_path = ",".join(dict.fromkeys([design.schema_name, *SETTINGS.defaults.search_path]))
        con.execute(f"SET search_path = '{search_path}'")
        if _kind(design) == "ctas":
            con.execute(f"CREATE TABLE {name} AS {_sql(design).strip().rstrip(';')}")
        else:
            # the SQL as written must run with the search path; but DuckDB binds a view's
            # names when it is queried, so the view itself is created from qualified SQL
            con.execute(f"SELECT count(*) FROM ({_sql(design).strip().rstrip(';')})").fetchall()[0]
            con.execute(f"CREATE VIEW {name} AS {_qualified_sql(design)}")
        con.execute("RESET search_path")
        # what the build runs is sqlglot's rewrite of the SQL: it must still be valid DuckDB
        con.execute(f"SELECT count(*) FROM ({_qualified_sql(design)})").fetchall()[0]
    yield con
    con.close()


def _described(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE {name}").fetchall()]


def test_source_tables_load_with_design_types(warehouse: duckdb.DuckDBPyConnection) -> None:
    for name, design in SOURCES.items():
        expected = [(c.name, _duckdb_type(c.sql_type)) for c in design.loaded_columns]
        assert _described(warehouse, name) == expected


@pytest.mark.parametrize("name", sorted(RELATIONS))
def test_relation_builds_as_designed(warehouse: duckdb.DuckDBPyConnection, name: str) -> None:
    design = DESIGNS[name]
    described = _described(warehouse, name)
    assert [n for n, _ in described] == [c.name for c in design.columns]
    (rows,) = warehouse.execute(f"SELECT count(*) FROM {name}").fetchall()[0]
    if name != "marts.payment_reconciliation":  # that one lists exceptions and may be empty
        assert rows > 0
    types = dict(described)
    money = [c.name for c in design.columns if MONEY.match(c.name)]
    for column in money:
        assert types[column].startswith("DECIMAL"), f"{name}.{column} is {types[column]}"
    if _kind(design) == "ctas":
        assert money, f"{name} has no money column?"
        for c in design.columns:
            assert types[c.name] == _duckdb_type(c.sql_type), f"{name}.{c.name}"
    for c in design.columns:
        if c.not_null:
            (nulls,) = warehouse.execute(f"SELECT count(*) FROM {name} WHERE {c.name} IS NULL").fetchall()[0]
            assert nulls == 0, f"{name}.{c.name} has {nulls} NULLs"
    keys = [design.constraints.primary_key] if design.constraints.primary_key else []
    for key in keys + design.constraints.unique:
        cols = ", ".join(key)
        (duplicates,) = warehouse.execute(
            f"SELECT count(*) FROM (SELECT {cols} FROM {name} GROUP BY {cols} HAVING count(*) > 1)"
        ).fetchall()[0]
        assert duplicates == 0, f"{name}: ({cols}) is not unique"
    for column in design.constraints.primary_key:
        (nulls,) = warehouse.execute(f"SELECT count(*) FROM {name} WHERE {column} IS NULL").fetchall()[0]
        assert nulls == 0


def test_source_keys_hold(warehouse: duckdb.DuckDBPyConnection) -> None:
    for name, design in SOURCES.items():
        for key in [design.constraints.primary_key, *design.constraints.unique]:
            cols = ", ".join(key)
            (dups,) = warehouse.execute(
                f"SELECT count(*) FROM (SELECT {cols} FROM {name} GROUP BY {cols} HAVING count(*) > 1)"
            ).fetchall()[0]
            assert dups == 0, f"{name}: ({cols})"


def test_money_adds_up(shop_db: tuple[Path, dict], warehouse: duckdb.DuckDBPyConnection) -> None:
    path, _ = shop_db
    # order totals from the upstream rows, in integer cents, rounded half up per line
    cents: Counter[int] = Counter()
    for order_id, quantity, price, discount in _rows(
        path, "SELECT order_id, quantity, unit_price, coalesce(discount_pct, 0) FROM order_items"
    ):
        exact = Decimal(repr(price)) * 100 * quantity * (100 - Decimal(repr(discount)))
        cents[order_id] += int((exact + 50) // 100)
    for order_id, fee in _rows(path, "SELECT order_id, coalesce(shipping_fee, 0) FROM orders"):
        cents[order_id] += int(Decimal(repr(fee)) * 100)
    totals = dict(warehouse.execute("SELECT order_id, order_total FROM analytics.orders_enriched").fetchall())
    assert {k: int(v * 100) for k, v in totals.items()} == dict(cents)
    # nearly every order's payments match; the reconciliation lists the rest
    (orders,) = warehouse.execute("SELECT count(*) FROM analytics.orders_enriched").fetchall()[0]
    (issues,) = warehouse.execute("SELECT count(*) FROM marts.payment_reconciliation").fetchall()[0]
    assert issues < orders * 0.01
    # daily revenue sums to the revenue of the revenue orders; the day is the UTC day
    (daily,) = warehouse.execute("SELECT sum(revenue) FROM analytics.daily_revenue").fetchall()[0]
    (direct,) = warehouse.execute("SELECT sum(order_total) FROM analytics.orders_enriched WHERE is_revenue").fetchall()[
        0
    ]
    assert daily == direct and isinstance(daily, Decimal)
    sample = warehouse.execute(
        "SELECT ordered_at, order_date FROM analytics.orders_enriched ORDER BY order_id LIMIT 500"
    ).fetchall()
    assert all(at.astimezone(UTC).date() == day for at, day in sample)
