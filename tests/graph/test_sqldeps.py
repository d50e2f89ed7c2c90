"""Tests for dependency inference, resolution and rewriting of relation SQL."""

from __future__ import annotations

import duckdb
import pytest
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from conveyor.errors import UserError
from conveyor.graph.splice import splice_tables
from conveyor.graph.sqldeps import (
    SqlParseError,
    TableRef,
    parse_sql,
    referenced_tables,
    resolve,
)


def names(sql: str) -> list[str]:
    """Referenced tables as "schema.name" (or just "name" when unqualified)."""
    refs = referenced_tables(parse_sql(sql))
    return [".".join(p for p in (r.catalog, r.schema, r.name) if p is not None) for r in refs]


# ------------------------------------------------------------------ referenced_tables

REFERENCE_CASES = [
    ("plain", "select * from sales.orders", ["sales.orders"]),
    ("unqualified", "select * from orders", ["orders"]),
    ("join", "select * from a.x join b.y on x.id = y.id left join z using (id)", ["a.x", "b.y", "z"]),
    ("comma join", "select * from a, b where a.id = b.id", ["a", "b"]),
    ("subquery in from", "select * from (select * from (select id from deep.t) s1) s2", ["deep.t"]),
    ("union", "select id from a union select id from b union all select id from c", ["a", "b", "c"]),
    ("intersect", "select id from a intersect select id from b", ["a", "b"]),
    ("except", "select id from a except select id from b", ["a", "b"]),
    ("in subquery", "select * from a where id in (select id from b)", ["a", "b"]),
    ("exists", "select * from a where exists (select 1 from b where b.id = a.id)", ["a", "b"]),
    ("scalar subquery", "select (select max(x) from m) as mx from a", ["m", "a"]),
    ("lateral", "select * from a, lateral (select * from b where b.id = a.id) l", ["a", "b"]),
    ("dedup keeps first", "select * from b join a on 1=1 join b b2 on 1=1", ["b", "a"]),
    ("case folded", "select * from Sales.Orders join sales.orders o2 on 1=1", ["sales.orders"]),
    ("quoted kept", 'select * from "Sales"."Orders"', ["Sales.Orders"]),
    ("quoted vs unquoted differ", 'select * from "Orders", orders', ["Orders", "orders"]),
    ("catalog", "select * from lake.raw.events", ["lake.raw.events"]),
    ("values", "values (1), (2)", []),
    ("parenthesised", "(select * from a)", ["a"]),
    ("from-first", "from sales.orders", ["sales.orders"]),
    # table-valued functions and file scans are not tables
    ("read_parquet", "select * from read_parquet('x/*.parquet') p join a on 1=1", ["a"]),
    ("range", "select * from range(10) r", []),
    ("generate_series", "select * from generate_series(1, 3) g", []),
    ("unnest", "select * from unnest([1, 2]) u(x)", []),
    ("file string", "select * from 'data.parquet'", []),
]


@pytest.mark.parametrize(("label", "sql", "expected"), REFERENCE_CASES, ids=[c[0] for c in REFERENCE_CASES])
def test_referenced_tables(label: str, sql: str, expected: list[str]) -> None:
    assert names(sql) == expected


CTE_CASES = [
    ("cte is not a table", "with r as (select * from a) select * from r", ["a"]),
    ("cte chain", "with r as (select * from a), s as (select * from r) select * from s", ["a"]),
    # inside its own body a non-recursive CTE name means the real table
    ("cte shadows own table", "with orders as (select * from orders where x) select * from orders", ["orders"]),
    ("recursive", "with recursive t as (select 1 union all select * from t) select * from t", []),
    ("later sibling not visible", "with a as (select * from b), b as (select 1) select * from a", ["b"]),
    # the CTE is only visible below its WITH: the outer reference is the real table
    ("nested with scope", "select * from (with o as (select 1) select * from o) s join o on 1=1", ["o"]),
    ("scalar subquery with", "select (with q as (select 1) select * from q) from q", ["q"]),
    (
        "qualified is never cte",
        "with orders as (select 1) select * from orders join sales.orders s on 1=1",
        ["sales.orders"],
    ),
    ("cte over union", "with c as (select * from a) select * from c union select * from c", ["a"]),
    ("cte used in subquery", "with c as (select 1 id) select * from b where id in (select id from c)", ["b"]),
    ("cte case folded", "with Recent as (select * from a) select * from RECENT", ["a"]),
    ("quoted cte is exact", 'with "R" as (select * from a) select * from r', ["a", "r"]),
]


@pytest.mark.parametrize(("label", "sql", "expected"), CTE_CASES, ids=[c[0] for c in CTE_CASES])
def test_cte_scoping(label: str, sql: str, expected: list[str]) -> None:
    assert names(sql) == expected


def test_weird_quoted_name_is_kept_exactly() -> None:
    refs = referenced_tables(parse_sql('select * from sales."weird ""name""; drop"'))
    assert refs == [TableRef("sales", 'weird "name"; drop', line=1, column=15)]


def test_positions_are_one_based_start_of_reference() -> None:
    sql = 'select *\nfrom a\n  join  "S"."T" t on 1=1\n  join lake.raw.e on 1=1'
    refs = referenced_tables(parse_sql(sql))
    assert [(r.name, r.line, r.column) for r in refs] == [("a", 2, 6), ("T", 3, 9), ("e", 4, 8)]


# ------------------------------------------------------------------------- errors

PARSE_ERRORS = [
    ("syntax", "select *\nfrom\n  where x", 3, 3, "where"),
    ("unexpected token", "select 1 from x )", 1, 17, "Unexpected token"),
    ("unterminated string", "select 1,\n  'abc from x", 2, 3, "unterminated quote"),
    ("unterminated identifier", 'select "abc from x', 1, 8, "unterminated quote"),
    ("empty", "", 1, 1, "found nothing"),
    ("only semicolons", " ;\n; ", 1, 1, "found nothing"),
    ("two statements", "select 1;\n  select 2", 2, 3, "found 2 statements"),
    ("ddl", "create table x as select 1", 1, 1, "found CREATE TABLE"),
    ("insert", "-- load\ninsert into x select 1", 2, 1, "found INSERT INTO x"),
    ("drop", "drop table x", 1, 1, "found DROP TABLE x"),
]


@pytest.mark.parametrize(("label", "sql", "line", "column", "text"), PARSE_ERRORS, ids=[c[0] for c in PARSE_ERRORS])
def test_parse_errors(label: str, sql: str, line: int, column: int, text: str) -> None:
    with pytest.raises(SqlParseError) as info:
        parse_sql(sql)
    assert (info.value.line, info.value.column) == (line, column)
    assert text in str(info.value)
    assert isinstance(info.value, UserError)


def test_trailing_semicolon_is_fine() -> None:
    assert names("select * from a;\n") == ["a"]


def test_parse_error_message_is_short() -> None:
    with pytest.raises(SqlParseError) as info:
        parse_sql("select * from\n  where (")
    assert info.value.detail == 'Expected table name but got "where"'
    assert "Token" not in str(info.value)


# ------------------------------------------------------------------------ resolve

KNOWN = {"sales.orders", "crm.customers", "crm.orders", "util.dates"}
RESOLVE_CASES = [
    ("qualified", TableRef("crm", "orders"), "crm.orders"),
    ("qualified unknown kept", TableRef("nope", "x"), "nope.x"),
    ("own schema first", TableRef(None, "orders"), "sales.orders"),
    ("search path", TableRef(None, "customers"), "crm.customers"),
    ("search path order", TableRef(None, "dates"), "util.dates"),
    ("missing falls back to own", TableRef(None, "ghost"), "sales.ghost"),
    ("catalog is external", TableRef("raw", "events", catalog="lake"), None),
]


@pytest.mark.parametrize(("label", "ref", "expected"), RESOLVE_CASES, ids=[c[0] for c in RESOLVE_CASES])
def test_resolve(label: str, ref: TableRef, expected: str | None) -> None:
    assert resolve(ref, "sales", ["crm", "util"], KNOWN) == expected


def test_resolve_is_case_insensitive_for_unquoted_names() -> None:
    (ref,) = referenced_tables(parse_sql("select * from CUSTOMERS"))
    assert resolve(ref, "sales", ["crm"], KNOWN) == "crm.customers"


# ----------------------------------------------------------------- splice_tables

STAGE = {"sales.orders": "stage.orders", "crm.customers": "stage.customers"}


@pytest.fixture
def warehouse() -> duckdb.DuckDBPyConnection:
    """Live tables hold wrong rows, staged tables the right ones: reading live shows up."""
    con = duckdb.connect()
    for schema in ("sales", "crm", "stage"):
        con.execute(f"create schema {schema}")
    con.execute("create table sales.orders as select 99 as id, 99 as customer_id, 0 as total")
    con.execute("create table crm.customers as select 99 as id, 'live' as name")
    con.execute("create table stage.orders as select * from (values (1, 10, 5), (2, 20, 7)) v(id, customer_id, total)")
    con.execute("create table stage.customers as select * from (values (10, 'ann'), (20, 'bob')) v(id, name)")
    return con


def rewrite(sql: str, mapping: dict[str, str] = STAGE) -> str:
    return splice_tables(sql, parse_sql(sql), mapping, own_schema="sales", search_path=["crm"], known=KNOWN)


REWRITE_CASES = [
    ("alias kept", "select o.id from sales.orders o order by 1", [(1,), (2,)]),
    ("qualified columns", "select sales.orders.id from sales.orders order by 1", [(1,), (2,)]),
    ("table-name columns", "select orders.id from sales.orders order by 1", [(1,), (2,)]),
    ("unqualified via search path", "select customers.name from customers order by 1", [("ann",), ("bob",)]),
    (
        "join",
        "select c.name, sum(total) from orders join crm.customers c on c.id = orders.customer_id group by 1 order by 1",
        [("ann", 5), ("bob", 7)],
    ),
    ("cte", "with o as (select * from orders) select count(*) from o", [(2,)]),
    ("cte shadowing", "with orders as (select * from orders where id = 1) select id from orders", [(1,)]),
    ("subquery", "select name from customers where id in (select customer_id from orders where total > 6)", [("bob",)]),
]


@pytest.mark.parametrize(("label", "sql", "rows"), REWRITE_CASES, ids=[c[0] for c in REWRITE_CASES])
def test_rewrite_runs_against_staged_tables(
    warehouse: duckdb.DuckDBPyConnection, label: str, sql: str, rows: list[tuple[object, ...]]
) -> None:
    assert warehouse.execute(rewrite(sql)).fetchall() == rows


def test_rewrite_changes_only_the_names() -> None:
    sql = rewrite(
        "select o.id, sales.orders.id from sales.orders o, sales.orders -- the end",
        {"sales.orders": "sales$stage.orders"},
    )
    assert (
        sql == 'select o.id, "sales$stage".orders.id from "sales$stage"."orders" o, "sales$stage"."orders" -- the end'
    )
    renamed = rewrite("select orders.id, sales.orders.x from sales.orders", {"sales.orders": "stage.o2"})
    assert renamed == 'select orders.id, orders.x from "stage"."o2" AS orders'


def test_rewrite_same_name_in_two_schemas_needs_no_alias(warehouse: duckdb.DuckDBPyConnection) -> None:
    warehouse.execute("create table crm.orders as select 99 as id")
    warehouse.execute("create table stage.orders_crm as select 3 as id")
    mapping = {"sales.orders": "stage.orders", "crm.orders": "stage.orders_crm"}
    sql = rewrite("select sales.orders.id, crm.orders.id from sales.orders, crm.orders order by 1", mapping)
    assert warehouse.execute(sql).fetchall() == [(1, 3), (2, 3)]


def test_rewrite_leaves_other_tables_and_input_tree_alone() -> None:
    sql = "select * from util.dates, read_parquet('x.parquet'), 'f.csv'"
    tree = parse_sql(sql)
    assert splice_tables(sql, tree, STAGE, own_schema="sales") == sql
    before = tree.sql()
    splice_tables(sql, tree, {"util.dates": "stage.dates"}, own_schema="sales")
    assert tree.sql() == before


def test_rewrite_weird_target_name_is_quoted(warehouse: duckdb.DuckDBPyConnection) -> None:
    warehouse.execute('create table stage."weird ""name""; drop" as select 42 as id')
    sql = rewrite("select orders.id from orders", {"sales.orders": 'stage.weird "name"; drop'})
    assert warehouse.execute(sql).fetchall() == [(42,)]


def scope_tables(sql: str) -> set[str]:
    """The tables sqlglot's own scope analysis finds, as an independent oracle."""
    found = set()
    for scope in traverse_scope(parse_sql(sql)):
        for source in scope.sources.values():
            if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
                found.add(".".join(part.name for part in source.parts))
    return found


# sqlglot's scope does not fold unquoted CTE names, so the case-folding case is left out
ORACLE_CASES = [c for c in REFERENCE_CASES + CTE_CASES if c[0] not in {"cte case folded", "case folded"}]


@pytest.mark.parametrize(("label", "sql", "expected"), ORACLE_CASES, ids=[c[0] for c in ORACLE_CASES])
def test_agrees_with_sqlglot_scope(label: str, sql: str, expected: list[str]) -> None:
    assert set(names(sql)) == scope_tables(sql)
