"""The SQL that runs is the SQL in the file (PostgreSQL): relations Conveyor builds against the text run directly.

The build reads the schema being rebuilt from ``dia$staging``, so every name of it must be
pointed there; nothing else of the text may change. Each query uses something a re-printing
SQL tool changes or refuses (``date_part`` becomes ``EXTRACT`` and numeric, ``|/`` and ``@``,
``E''`` and dollar-quoted strings, ``::`` casts, a comment after the final ``;`` ...). The
relation Conveyor builds must hold exactly the rows and column types (with type modifiers)
that the text gives when run directly on the published schemas.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor import api
from conveyor.errors import DependencyError
from conveyor.validate import validate

from .conftest import make_upstream

pytestmark = pytest.mark.postgres

# name -> (kind, SQL text as the user wrote it, depends_on)
QUERIES: dict[str, tuple[str, str, str]] = {
    "date_part": (
        "ctas",
        "SELECT id, date_part('week', ordered_at) AS w, date_part('epoch', ordered_at) AS e\nFROM base",
        "",
    ),
    "extract": ("ctas", "SELECT id, EXTRACT(week FROM ordered_at) AS w FROM base", ""),
    "roots": ("ctas", "SELECT id, |/ (id * 1.0) AS r, @ (-id) AS a, ||/ 27.0 AS cube\nFROM base", "dia.base"),
    "casts": (
        "ctas",
        "SELECT id::text AS s, amount::float8 AS d, '2024-01-02'::date AS day, '{1,2}'::int[] AS arr,\n"
        "       amount::numeric(10,1) AS rounded\nFROM base",
        "",
    ),
    "strings": (
        "ctas",
        "SELECT E'a\\tb\\n' || id::text AS e, $$dollar ' -- quoted$$ AS dq, 'it''s' AS q FROM base",
        "",
    ),
    "json": (
        "ctas",
        "SELECT id, ('{\"a\": ' || id || '}')::jsonb -> 'a' AS j, '{\"a\": 1}'::jsonb ->> 'a' AS t\nFROM base",
        "",
    ),
    "distinct_on": (
        "ctas",
        "SELECT DISTINCT ON (customer_id) customer_id, id FROM base ORDER BY customer_id, id DESC",
        "",
    ),
    "aggregates": (
        "ctas",
        "SELECT customer_id, string_agg(id::text, ',' ORDER BY id) AS ids, array_agg(id ORDER BY id) AS arr\n"
        "FROM base GROUP BY customer_id",
        "",
    ),
    "patterns": (
        "ctas",
        "SELECT id, note ILIKE '%e%' AS has_e, note ~ '^t' AS re, note IS DISTINCT FROM '' AS d FROM base",
        "",
    ),
    "intervals": ("ctas", "SELECT id, ordered_at + interval '1 day' AS next, now() - now() AS zero FROM base", ""),
    "series": ("ctas", "SELECT b.id, g FROM base b, generate_series(1, 2) AS g", ""),
    "any_array": ("ctas", "SELECT id FROM base WHERE id = ANY(ARRAY[10, 11, 12])", ""),
    "trailing_semicolon_comment": ("ctas", "SELECT id, amount FROM base; -- the end", ""),
    "comment_at_end": ("ctas", "SELECT id FROM base -- the end, no newline", ""),
    "qualified_columns": (
        "ctas",
        "SELECT dia.base.id, base.amount, shop.customers.name\nFROM base, shop.customers\n"
        "WHERE shop.customers.id = dia.base.customer_id",
        "",
    ),
    "mixed_view": (
        "view",
        "/* names: own schema, search path, qualified */\n"
        "SELECT b.id, c.name, c2.email\nFROM base AS b\nJOIN shop.customers c ON c.id = b.customer_id\n"
        "JOIN customers AS c2 ON c2.id = c.id",
        "",
    ),
    "unparsed_view": ("view", "SELECT id, @ -5 AS five FROM base", "dia.base"),
}


def _designs() -> dict[str, str | None]:
    designs: dict[str, str | None] = {
        "dia/base.yaml": "name: dia.base\nkind: ctas\n",
        "dia/base.sql": "SELECT id, customer_id, amount, ordered_at, note FROM shop.orders\n",
    }
    for name, (kind, _, depends_on) in QUERIES.items():
        extra = f"depends_on: [{depends_on}]\n" if depends_on else ""
        designs[f"dia/{name}.yaml"] = f"name: dia.{name}\nkind: {kind}\n{extra}"
    return designs


def _result(con: psycopg.Connection[Any], sql: str) -> tuple[list[tuple[str, str]], list[str]]:
    cursor = con.execute(sql.encode())
    columns = [(c.name, c.type_display) for c in cursor.description or []]
    return columns, sorted(repr(row) for row in cursor.fetchall())


def test_built_relations_equal_the_text_run_directly(pg_project: Callable[..., Path], pgwh_dsn: str) -> None:
    root = pg_project(designs=_designs())
    settings = root / "conveyor.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + "  search_path: [shop]\n", encoding="utf-8")
    for name, (_, sql, _) in QUERIES.items():
        (root / f"schemas/dia/{name}.sql").write_text(sql, encoding="utf-8")
    outcome = api.run(api.open_project(root), env="pg")
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    different = {}
    with psycopg.connect(pgwh_dsn, autocommit=True) as con:
        con.execute("SET TIME ZONE 'UTC'")
        for name, (_, sql, _) in QUERIES.items():
            con.execute("SET search_path = dia, shop")
            direct = _result(con, sql)
            con.execute("RESET search_path")
            built = _result(con, f"SELECT * FROM dia.{name}")
            if built != direct:
                different[name] = (built, direct)
    assert different == {}


def test_unparsed_sql_is_a_warning_and_compiles_in_the_warehouse(pg_project: Callable[..., Path]) -> None:
    designs = _designs()
    root = pg_project(designs={k: v for k, v in designs.items() if "/unparsed_view" in k or "/base" in k})
    (root / "schemas/dia/unparsed_view.sql").write_text(QUERIES["unparsed_view"][1], encoding="utf-8")
    report = validate(root, warehouse="pg", sources=False)
    assert [(p.severity, p.code, str(p.location)) for p in report.problems] == [
        ("warning", "sql-unparsed", "schemas/dia/unparsed_view.sql:1:14")
    ], [p.render() for p in report.problems]
    # a genuine mistake sqlglot cannot parse either is the warehouse's error, at the file
    (root / "schemas/dia/unparsed_view.sql").write_text("SELECT id, @ -5 AS five FROM base WHERE (", encoding="utf-8")
    report = validate(root, warehouse="pg", sources=False)
    errors = [(p.code, str(p.location)) for p in report.problems if p.severity == "error"]
    assert errors == [("compile-failed", "schemas/dia/unparsed_view.sql")], [p.render() for p in report.problems]


@pytest.mark.parametrize(
    "sql",
    ["SELECT id FROM shop.orders -- the last line is a comment", "SELECT id FROM shop.orders; -- after the semicolon"],
    ids=["comment", "semicolon-comment"],
)
def test_sql_ending_in_a_comment_compiles_and_loads_empty(pg_project: Callable[..., Path], sql: str) -> None:
    root = pg_project(
        designs={
            "dia/tail.yaml": "name: dia.tail\nkind: ctas\ncolumns:\n  - {name: id, type: bigint}\n",
            "dia/tail_view.yaml": "name: dia.tail_view\nkind: view\n",
        }
    )
    (root / "schemas/dia/tail.sql").write_text(sql, encoding="utf-8")
    (root / "schemas/dia/tail_view.sql").write_text(sql.replace("shop.orders", "tail"), encoding="utf-8")
    report = validate(root, warehouse="pg", sources=False)
    assert [p for p in report.problems if p.severity == "error"] == [], [p.render() for p in report.problems]
    outcome = api.load(api.open_project(root), env="pg", skip_copy=True)
    assert outcome.ok, outcome.build.errors if outcome.build else outcome


def test_load_one_schema_reads_the_views_of_the_kept_schemas(pg_project: Callable[..., Path], sql: Any) -> None:
    """dbt's layout: staging views over sources, mart tables over staging; ``load marts`` alone."""
    from tests.warehouse.duckdb.test_kept_views import LAYOUT

    layout = {k: v for k, v in LAYOUT.items() if not k.startswith("marts/top")}
    root = pg_project(designs=layout)
    project = api.open_project(root)
    assert api.run(project, env="pg").ok
    outcome = api.load(project, ["marts"], env="pg")
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    assert outcome.build is not None and set(outcome.build.status) == {"marts.revenue"}
    assert sql("SELECT orders FROM reporting.big WHERE customer_id = 1") == [(2,)]
    assert sql(
        "SELECT table_schema, table_name FROM information_schema.views WHERE table_schema IN ('staging', 'reporting') "
        "ORDER BY 1, 2"
    ) == [("reporting", "big"), ("staging", "stg_customers"), ("staging", "stg_orders")]


OWN_DATABASE = {
    "dia/latest.yaml": "name: dia.latest\nkind: ctas\n",
    "dia/latest.sql": 'SELECT max("{db}"."shop"."orders".version) AS version FROM "{db}"."shop"."orders"\n',
}


def test_names_with_the_own_database_read_the_new_build(
    pg_project: Callable[..., Path], pgwh_dsn: str, sql: Any
) -> None:
    """``"db"."shop"."orders"`` is the project's shop.orders: built after it, from its new version."""
    database = pgwh_dsn.rpartition("/")[2]
    designs = {k: v.replace("{db}", database) for k, v in OWN_DATABASE.items()}
    root = pg_project(designs=designs)
    settings = root / "conveyor.yaml"
    settings.write_text(settings.read_text(encoding="utf-8").replace('"${PGWH_DSN}"', pgwh_dsn), encoding="utf-8")
    project = api.open_project(root)
    assert project.relations["dia.latest"].dependencies == ["shop.orders"]
    assert api.run(project, env="pg").ok
    make_upstream(root / "upstream.db", version=2)
    assert api.run(project, env="pg").ok
    assert sql("SELECT version FROM dia.latest") == [(2,)]


def test_a_database_name_unknown_at_load_is_refused_before_building(
    pg_project: Callable[..., Path], pgwh_dsn: str, sql: Any
) -> None:
    """The default environment's DSN is a variable: the name cannot be recognised when the project loads."""
    database = pgwh_dsn.rpartition("/")[2]
    designs = {k: v.replace("{db}", database) for k, v in OWN_DATABASE.items()}
    root = pg_project(designs=designs)
    project = api.open_project(root)
    assert project.relations["dia.latest"].dependencies == []
    with pytest.raises(DependencyError) as info:
        api.run(project, env="pg")
    assert info.value.exit_code == 2
    column = designs["dia/latest.sql"].index('FROM "') + len("FROM ") + 1
    assert str(info.value.location) == f"schemas/dia/latest.sql:1:{column}"
    assert f'"{database}" is the database of the warehouse being built' in info.value.message
    assert sql("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'dia%'") == []


def test_reading_a_rebuilt_relation_through_a_kept_view_is_refused(pg_project: Callable[..., Path], sql: Any) -> None:
    """PostgreSQL views are bound to what they read: during the build a kept view shows the published rows."""
    from tests.warehouse.duckdb.test_kept_views import LAYOUT

    root = pg_project(designs=LAYOUT)
    project = api.open_project(root)
    assert api.run(project, env="pg").ok
    with sqlite3.connect(root / "upstream.db") as con:
        con.execute("INSERT INTO orders VALUES (20, 1, '1.5', NULL, NULL, 1)")
    assert api.run(project, ["shop"], env="pg").ok
    with pytest.raises(DependencyError) as info:
        api.load(project, ["marts"], env="pg")
    assert '"marts.top" reads "reporting.big", a view of a schema this load keeps' in info.value.message
    assert "conveyor load marts reporting" in (info.value.hint or "")
    assert sql("SELECT most FROM marts.top") == [(2,)]
    # loading both schemas builds the view over the new rows
    assert api.load(project, ["marts", "reporting"], env="pg").ok
    assert sql("SELECT most FROM marts.top") == [(3,)]
