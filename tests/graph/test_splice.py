"""Splicing names into the user's SQL, checked by DuckDB itself on generated queries.

The oracle: the original text run where the project's relations hold the right rows gives
the same result as the spliced text run where those names hold wrong rows and the names
the build reads (``stage.*``) hold the right ones. Queries are generated with every way of
writing a name (unqualified, qualified, quoted, mixed case, with the database), columns
qualified by alias, table or schema, names inside strings and comments (which must not
change), CTEs and subqueries around them, and every ending (``;``, comments).
"""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.graph.splice import limit_zero, splice_tables, statement_text
from conveyor.graph.sqldeps import parse_sql

KNOWN = {"sales.orders", "crm.customers"}
MAPPING = {"sales.orders": "stage.orders", "crm.customers": "stage.customers"}
ORDERS = [(1, 10, 5), (2, 20, 7), (3, 10, 1)]
CUSTOMERS = [(10, "ann"), (20, "bob")]

# (text, has schema, has catalog); DuckDB names an in-memory database "memory"
ORDERS_REFS = [
    ("orders", False, False),
    ("sales.orders", True, False),
    ("Sales.ORDERS", True, False),
    ('"sales"."orders"', True, False),
    ("memory.sales.orders", True, True),
    ('"memory".sales."orders"', True, True),
]
CUSTOMERS_REFS = [
    ("customers", False, False),
    ("crm.customers", True, False),
    ("CRM.Customers", True, False),
    ('"crm"."customers"', True, False),
    ("MEMORY.crm.customers", True, True),
]
NOISE = ["", "/* sales.orders; crm.customers */ ", "-- from orders;\n", "\n  "]
ENDINGS = ["", ";", "; -- the end", " -- the end", ";\n/* done */\n", "\n-- orders\n"]


def _database(right: bool) -> duckdb.DuckDBPyConnection:
    """``right``: the project's names hold the right rows; else they hold wrong ones and stage.* the right."""
    con = duckdb.connect()
    for schema in ("sales", "crm", "stage"):
        con.execute(f"CREATE SCHEMA {schema}")
    live = ORDERS if right else [(99, 99, 0)]
    con.execute("CREATE TABLE sales.orders (id INT, customer_id INT, total INT)")
    con.executemany("INSERT INTO sales.orders VALUES (?, ?, ?)", live)
    con.execute("CREATE TABLE crm.customers (id INT, name VARCHAR)")
    con.executemany("INSERT INTO crm.customers VALUES (?, ?)", CUSTOMERS if right else [(99, "live")])
    con.execute("CREATE TABLE stage.orders (id INT, customer_id INT, total INT)")
    con.executemany("INSERT INTO stage.orders VALUES (?, ?, ?)", ORDERS if not right else [(98, 98, 0)])
    con.execute("CREATE TABLE stage.customers (id INT, name VARCHAR)")
    con.executemany("INSERT INTO stage.customers VALUES (?, ?)", CUSTOMERS if not right else [(98, "stage")])
    return con


RIGHT, STAGED = _database(True), _database(False)


def _column(ref: tuple[str, bool, bool], alias: str | None, column: str, table: str, draw: st.DrawFn) -> str:
    """A column of a table, qualified in one of the ways SQL allows for how the table was written."""
    bare = [column] if column != "id" else []  # both tables have an id
    if alias:
        return draw(st.sampled_from([f"{alias}.{column}", *bare]))
    text, has_schema, _ = ref
    choices = [*bare, f"{table}.{column}"]
    if has_schema:
        choices.append(f"{text}.{column}")
    return draw(st.sampled_from(choices))


@st.composite
def queries(draw: st.DrawFn) -> str:
    orders = draw(st.sampled_from(ORDERS_REFS))
    customers = draw(st.sampled_from(CUSTOMERS_REFS))
    o_alias = draw(st.sampled_from([None, "o"]))
    c_alias = draw(st.sampled_from([None, "c"]))
    total = _column(orders, o_alias, "total", "orders", draw)
    customer = _column(orders, o_alias, "customer_id", "orders", draw)
    name = _column(customers, c_alias, "name", "customers", draw)
    cid = _column(customers, c_alias, "id", "customers", draw)
    noise = draw(st.lists(st.sampled_from(NOISE), min_size=3, max_size=3))
    body = (
        f"{noise[0]}SELECT {total} AS total, {name} AS name, 'crm.customers -- ;' AS s\n"
        f"FROM {orders[0]}{' AS ' + o_alias if o_alias else ''} {noise[1]}"
        f"JOIN {customers[0]}{' ' + c_alias if c_alias else ''} ON {customer} = {cid}{noise[2]}"
    )
    wrap = draw(st.sampled_from(["plain", "cte", "subquery", "shadow"]))
    if wrap == "cte":
        body = f"WITH q AS (\n{body}\n) SELECT * FROM q"
    elif wrap == "subquery":
        body = f"SELECT * FROM (\n{body}\n) AS sub WHERE total > 0"
    elif wrap == "shadow":  # a CTE named like a table: the outer name is the CTE, the inner the table
        body = f"WITH orders AS (SELECT * FROM sales.orders WHERE total > 1)\n{body}"
    return body + draw(st.sampled_from(ENDINGS))


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[object, ...]]:
    con.execute("SET search_path = 'sales,crm'")  # the relation's own schema, then defaults.search_path
    return sorted(con.execute(sql).fetchall())


@settings(max_examples=150, deadline=None)
@given(queries())
def test_spliced_text_reads_the_staged_relations_and_means_the_same(sql: str) -> None:
    spliced = splice_tables(
        sql, parse_sql(sql), MAPPING, own_schema="sales", search_path=["crm"], known=KNOWN, catalogs={"memory"}
    )
    assert _rows(STAGED.cursor(), statement_text(spliced)) == _rows(RIGHT.cursor(), statement_text(sql))
    # every byte outside the names is the user's: the literal, comments and ending survive
    assert "'crm.customers -- ;' AS s" in spliced
    for piece in [*NOISE, *ENDINGS]:
        if piece.strip() and piece in sql:
            assert piece in spliced


@settings(max_examples=60, deadline=None)
@given(queries())
def test_wrapped_text_compiles_whatever_the_ending(sql: str) -> None:
    cursor = RIGHT.cursor()
    cursor.execute("SET search_path = 'sales,crm'")
    described = cursor.execute(limit_zero(sql)).description
    assert [d[0] for d in described] == ["total", "name", "s"]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("select 1", "select 1"),
        ("select 1;", "select 1"),
        ("select 1 ; -- x", "select 1  -- x\n"),
        ("select ';' -- x;", "select ';' -- x;\n"),
        ("select 1;\n\n", "select 1"),
        ("select 1 /* ; */ ;", "select 1 /* ; */"),
        ("select $$;$$;", "select $$;$$"),
    ],
)
def test_statement_text(sql: str, expected: str) -> None:
    assert statement_text(sql, "postgres") == expected
