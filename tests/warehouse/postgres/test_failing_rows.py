"""The failing-rows queries of the generic tests agree with a plain Python oracle, on any data.

Hypothesis generates tables (NULLs, duplicates, negative numbers, odd text) and a test
definition; the query Conveyor writes runs in a real DuckDB and in a real PostgreSQL, and
the number of failures and the failing keys must equal what the definition means.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.project import Project
from conveyor.quality.plan import tests_for as relation_tests
from conveyor.quality.run import Tester as QueryTester
from conveyor.warehouse.base import QueryResult
from tests.conftest import build_project

ROWS = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(-5, 5)), st.one_of(st.none(), st.sampled_from(["a", "b", "", "ä'"]))),
    max_size=12,
)
PARENT = st.lists(st.integers(-5, 5), max_size=6)
DESIGN = """\
name: mart.t
kind: ctas
columns:
  - name: id
    type: bigint
  - name: n
    type: integer
    tests:
      - not_null
      - unique
      - accepted_values: {{values: [{values}]}}
      - relationships: {{to: mart.p, field: k}}
  - name: s
    type: text
    tests:
      - not_null: {{where: "n > 0"}}
      - accepted_values: {{values: [a, "ä'"], severity: warn}}
constraints:
  primary_key: [id]
tests:
  - expression: "n >= {floor}"
  - unique: {{columns: [n, s]}}
  - row_count: {{min: 2, max: 8}}
"""


def _project(root: Path, values: list[int], floor: int) -> Project:
    design = DESIGN.format(values=", ".join(map(str, values)), floor=floor)
    build_project(
        root,
        designs={
            "mart/t.yaml": design,
            "mart/t.sql": "SELECT 1 AS id, 1 AS n, 'a' AS s\n",
            "mart/p.yaml": "name: mart.p\nkind: ctas\n",
            "mart/p.sql": "SELECT 1 AS k\n",
        },
        upstream=False,
    )
    return Project.load(root, cache=False)


def _oracle(
    rows: list[tuple[int | None, str | None]], parent: list[int], values: list[int], floor: int
) -> dict[str, int]:
    numbers = [n for n, _ in rows]
    pairs = [(n, s) for n, s in rows if n is not None and s is not None]
    return {
        "not_null(n)": sum(n is None for n in numbers),
        "unique(n)": sum(1 for _, c in Counter(n for n in numbers if n is not None).items() if c > 1),
        "accepted_values(n)": sum(n is not None and n not in values for n in numbers),
        "relationships(n -> mart.p.k)": sum(n is not None and n not in parent for n in numbers),
        "not_null(s)": sum(n is not None and n > 0 and s is None for n, s in rows),
        "accepted_values(s)": sum(s is not None and s not in ("a", "ä'") for _, s in rows),
        f"expression(n >= {floor})": sum(n is None or n < floor for n in numbers),
        "unique(n, s)": sum(1 for _, c in Counter(pairs).items() if c > 1),
        "row_count": 0 if 2 <= len(rows) <= 8 else 1,
    }


def _check(project: Project, dialect: str, fetch: Callable[[str, int], QueryResult], expected: dict[str, int]) -> None:
    tester = QueryTester(project, dialect, fetch)
    found = {}
    for test in relation_tests(project, [project.relations["mart.t"]]):
        outcome = tester.run(test)
        assert outcome.failures or outcome.status == "succeeded", outcome.message  # a query that broke
        found[test.name] = outcome.failures
        if outcome.failures and test.kind not in ("unique", "row_count"):
            assert len(outcome.rows) == min(outcome.failures, 5) and all("id" in row for row in outcome.rows)
    assert found == expected


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA mart")
    yield con
    con.close()


@given(rows=ROWS, parent=PARENT, values=st.lists(st.integers(-5, 5), min_size=1, max_size=4), floor=st.integers(-5, 5))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_duckdb_failures_match_the_definition(
    tmp_path: Path, duck: duckdb.DuckDBPyConnection, rows: list[tuple[int | None, str | None]], parent: list[int],
    values: list[int], floor: int,
) -> None:  # fmt: skip
    project = _project(tmp_path / f"p{abs(hash((tuple(values), floor)))}", values, floor)
    duck.execute("CREATE OR REPLACE TABLE mart.t (id BIGINT, n INTEGER, s TEXT)")
    duck.execute("CREATE OR REPLACE TABLE mart.p (k INTEGER)")
    if rows:
        duck.executemany("INSERT INTO mart.t VALUES (?, ?, ?)", [(i, n, s) for i, (n, s) in enumerate(rows)])
    if parent:
        duck.executemany("INSERT INTO mart.p VALUES (?)", [(k,) for k in parent])

    def fetch(sql: str, limit: int) -> QueryResult:
        cursor = duck.execute(sql)
        columns = [d[0] for d in cursor.description]
        found = cursor.fetchmany(limit + 1)
        return QueryResult(columns, found[:limit], len(found) > limit)

    _check(project, "duckdb", fetch, _oracle(rows, parent, values, floor))


@pytest.fixture(scope="module")
def pg(pgwh_database: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(pgwh_database, autocommit=True) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS mart")
        yield con


@given(rows=ROWS, parent=PARENT, values=st.lists(st.integers(-5, 5), min_size=1, max_size=4), floor=st.integers(-5, 5))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_postgres_failures_match_the_definition(
    tmp_path: Path, pg: psycopg.Connection[tuple[object, ...]], rows: list[tuple[int | None, str | None]],
    parent: list[int], values: list[int], floor: int,
) -> None:  # fmt: skip
    project = _project(tmp_path / f"p{abs(hash((tuple(values), floor)))}", values, floor)
    pg.execute("DROP TABLE IF EXISTS mart.t, mart.p")
    pg.execute("CREATE TABLE mart.t (id BIGINT, n INTEGER, s TEXT)")
    pg.execute("CREATE TABLE mart.p (k INTEGER)")
    with pg.cursor() as cursor:
        if rows:
            cursor.executemany("INSERT INTO mart.t VALUES (%s, %s, %s)", [(i, n, s) for i, (n, s) in enumerate(rows)])
        if parent:
            cursor.executemany("INSERT INTO mart.p VALUES (%s)", [(k,) for k in parent])

    def fetch(sql: str, limit: int) -> QueryResult:
        cursor = pg.execute(sql)
        columns = [d.name for d in cursor.description or []]
        found = cursor.fetchmany(limit + 1)
        return QueryResult(columns, found[:limit], len(found) > limit)

    _check(project, "postgres", fetch, _oracle(rows, parent, values, floor))
