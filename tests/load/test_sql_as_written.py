"""The SQL that runs is the SQL in the file (DuckDB): relations built by Conveyor against the same text run directly.

Each query below uses something a re-printing SQL tool may change (DuckDB's lambdas,
``list()``, the PIVOT statement, ``date_part``, struct and map literals ...) and names
relations both qualified and unqualified, so Conveyor has to bind its names. The relation
Conveyor builds must hold exactly the rows and column types that the text gives when run
directly on the published warehouse with the schema's search path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from conveyor import api
from tests.conftest import CONVEYOR_YAML

SETTINGS = CONVEYOR_YAML + "  search_path: [shop]\n"

# name -> (kind, SQL text as the user wrote it)
QUERIES: dict[str, tuple[str, str]] = {
    "date_part": (
        "ctas",
        "SELECT id, date_part('week', ordered_at) AS w, date_part('isodow', ordered_at) AS d\nFROM base",
    ),
    "lambdas": (
        "ctas",
        "SELECT id, list_transform([id, customer_id], lambda x: x * 2) AS doubled,\n"
        "       list_filter([id, customer_id], lambda x: x > 5) AS big\nFROM base",
    ),
    "list_agg": (
        "ctas",
        "SELECT customer_id, list(id ORDER BY id) AS ids, list(amount) AS amounts\nFROM base GROUP BY 1",
    ),
    "comprehension": ("ctas", "SELECT id, [x + 1 FOR x IN [id, customer_id] IF x > 1] AS c FROM base"),
    "pivot": ("ctas", "PIVOT base ON customer_id IN (1, 2, 3) USING sum(amount) GROUP BY id"),
    "unpivot": (
        "ctas",
        "UNPIVOT (SELECT id, customer_id, id * 10 AS tenfold FROM base) ON customer_id, tenfold\nINTO NAME k VALUE v",
    ),
    "struct_map": ("ctas", "SELECT id, {'a': id, 'b': 'x'} AS s, MAP {'k': amount} AS m FROM base"),
    "qualify": (
        "ctas",
        "SELECT id, customer_id FROM base\nQUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY id DESC) = 1",
    ),
    "casts": ("ctas", "SELECT id::VARCHAR AS s, amount::DOUBLE AS d, '2024-01-02'::DATE AS day FROM base"),
    "operators": ("ctas", "SELECT id, id // 4 AS half, id % 3 AS m, 2 ** 3 AS p, 'ab' || id AS cat FROM base"),
    "star_modifiers": ("ctas", "SELECT * EXCLUDE (ordered_at) REPLACE (amount * 2 AS amount) FROM base"),
    "from_first": ("ctas", "FROM base SELECT id, amount"),
    "trailing_semicolon_comment": ("ctas", "SELECT id, amount FROM base; -- the end"),
    "comment_at_end": ("ctas", "SELECT id FROM base -- the end, no newline"),
    "dashes_in_strings": ("ctas", "SELECT '--;' AS s, id, 'a;b' AS t FROM base -- ';"),
    "qualified_columns": (
        "ctas",
        "SELECT dia.base.id, base.amount, shop.customers.name\nFROM base, shop.customers\n"
        "WHERE shop.customers.id = dia.base.customer_id",
    ),
    "mixed_view": (
        "view",
        "/* names: own schema, search path, qualified */\n"
        "SELECT b.id, c.name, c2.email\nFROM base AS b\nJOIN shop.customers c ON c.id = b.customer_id\n"
        "JOIN customers AS c2 ON c2.id = c.id",
    ),
    "lambda_view": ("view", "SELECT id, list_reduce([id, customer_id, 1], lambda a, b: a + b) AS total FROM base"),
    # sqlglot cannot parse these (DuckDB can): they run as written, bound by the search path
    "unparsed": ("ctas", "SELECT id, @ (-id) AS a, (id % 5)::INTEGER ! AS f FROM base"),
    "unparsed_view": ("view", "SELECT id, (id % 4)::INTEGER ! AS f FROM base"),
}
UNPARSED = {"unparsed", "unparsed_view"}


def _files() -> dict[str, str | None]:
    files: dict[str, str | None] = {
        "dia/base.yaml": "name: dia.base\nkind: ctas\n",
        "dia/base.sql": "SELECT id, customer_id, amount, ordered_at FROM shop.orders\n",
    }
    for name, (kind, sql) in QUERIES.items():
        extra = "depends_on: [dia.base]\n" if name in UNPARSED else ""
        files[f"dia/{name}.yaml"] = f"name: dia.{name}\nkind: {kind}\n{extra}"
        files[f"dia/{name}.sql"] = sql
    return files


def _result(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[str], list[tuple[object, ...]]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    types = [str(d[1]) for d in cursor.description]
    return names, types, sorted(cursor.fetchall(), key=repr)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, new_project: Callable[..., Path]) -> Path:
    root = new_project(tmp_path_factory.mktemp("as_written") / "p", settings=SETTINGS, designs=_files())
    for path in (root / "schemas/dia").glob("*.sql"):  # written without dedent's final newline games
        name = path.stem
        if name in QUERIES:
            path.write_text(QUERIES[name][1], encoding="utf-8")
    project = api.open_project(root)
    assert sorted(w.code for w in project.warnings) == ["sql-unparsed", "sql-unparsed"]
    outcome = api.run(project)
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    return root


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_built_relation_equals_the_text_run_directly(built: Path, name: str) -> None:
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        con.execute("SET search_path = 'dia,shop'")
        direct = _result(con, QUERIES[name][1])
        con.execute("RESET search_path")
        conveyor = _result(con, f"SELECT * FROM dia.{name}")
    assert conveyor == direct


ENDINGS = [
    "SELECT id FROM shop.orders -- the last line is a comment",
    "SELECT id FROM shop.orders; -- a comment after the semicolon",
    "SELECT id FROM shop.orders;\n-- on its own line\n",
    "SELECT id\nFROM shop.orders -- a\n/* b */ -- c",
]


@pytest.mark.parametrize("sql", ENDINGS, ids=["comment", "semicolon-comment", "comment-line", "comments"])
def test_sql_ending_in_a_comment_compiles_and_loads_empty(make_project: Callable[..., Path], sql: str) -> None:
    from conveyor.validate import validate

    root = make_project(
        designs={
            "dia/tail.yaml": "name: dia.tail\nkind: ctas\ncolumns:\n  - {name: id, type: bigint}\n",
            "dia/tail_view.yaml": "name: dia.tail_view\nkind: view\n",
        }
    )
    (root / "schemas/dia/tail.sql").write_text(sql, encoding="utf-8")
    (root / "schemas/dia/tail_view.sql").write_text(sql.replace("shop.orders", "dia.tail"), encoding="utf-8")
    report = validate(root, warehouse="dev", sources=False)
    assert [p for p in report.problems if p.severity == "error"] == [], [p.render() for p in report.problems]
    outcome = api.load(api.open_project(root), skip_copy=True)
    assert outcome.ok, outcome.build.errors if outcome.build else outcome
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM dia.tail_view").fetchall() == [(0,)]


def test_an_unparsed_view_must_work_for_its_readers(make_project: Callable[..., Path]) -> None:
    """DuckDB binds a view's names when it is read: one only the build's search path finds is refused."""
    root = make_project(
        settings=SETTINGS,
        designs={
            "dia/names.yaml": "name: dia.names\nkind: view\ndepends_on: [shop.customers]\n",
            "dia/names.sql": "SELECT 3 ! AS six, name FROM customers\n",
        },
    )
    outcome = api.run(api.open_project(root))
    assert outcome.build is not None and not outcome.build.published
    error = outcome.build.errors["dia.names"]
    assert 'the view "dia.names" does not work for readers' in error and "Qualify the names" in error
    (root / "schemas/dia/names.sql").write_text("SELECT 3 ! AS six, name FROM shop.customers\n")
    assert api.run(api.open_project(root)).ok
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT DISTINCT six FROM dia.names").fetchall() == [(6,)]


def test_sql_only_the_warehouse_can_parse_is_a_warning(make_project: Callable[..., Path]) -> None:
    from conveyor.validate import validate

    root = make_project(
        designs={
            "dia/roots.yaml": "name: dia.roots\nkind: ctas\ndepends_on: [shop.orders]\n",
            "dia/roots.sql": "SELECT id,\n       id::INTEGER ! AS f\nFROM shop.orders\n",
            "dia/broken.yaml": "name: dia.broken\nkind: ctas\n",
            "dia/broken.sql": "SELECT id FROM shop.orders ORDER BY id USING <\n",
        }
    )
    report = validate(root, sources=False)
    found = sorted((p.severity, p.code, str(p.location)) for p in report.problems)
    assert found == [
        ("error", "sql-parse", "schemas/dia/broken.sql:1:40"),  # DuckDB's own parser rejects it too
        ("warning", "sql-unparsed", "schemas/dia/roots.sql:2:20"),
    ], [p.render() for p in report.problems]


def test_a_load_notes_the_sql_it_runs_unparsed(make_project: Callable[..., Path], cli: Callable[..., Any]) -> None:
    root = make_project(
        designs={
            "dia/fact.yaml": "name: dia.fact\nkind: ctas\ndepends_on: [shop.orders]\n",
            "dia/fact.sql": "SELECT id::INTEGER ! AS f FROM shop.orders WHERE id < 12\n",
        }
    )
    result = cli("run", cwd=root)
    assert result.code == 0, result.stdout + result.stderr
    shown = " ".join(result.stdout.split())
    assert "schemas/dia/fact.sql: sqlglot cannot parse it" in shown and "depends_on only" in shown
