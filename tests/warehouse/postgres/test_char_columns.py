"""PostgreSQL ``char(n)`` columns answer queries the same on a DuckDB and a PostgreSQL warehouse.

The lake keeps the blank-padded value PostgreSQL returns; every warehouse stores the value
without trailing blanks (what PostgreSQL's ``char(n)::text`` gives), so comparisons,
``length``, concatenation, grouping, joins and pattern matching agree with each other, and
comparisons, ``length``, concatenation, grouping and joins agree with PostgreSQL's own
``char(n)`` semantics on the upstream table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import yaml

from conveyor import api
from conveyor.bootstrap import bootstrap
from conveyor.project import Project

pytestmark = pytest.mark.postgres

#: every string of up to three characters over an alphabet with blanks, a tab and a non-ASCII letter
VALUES = ["".join(p) for n in range(4) for p in itertools.product("a \té", repeat=n)]

#: (query, also compare with PostgreSQL's char(n) semantics on the upstream table)
QUERIES: list[tuple[str, bool]] = [
    ("SELECT id, c FROM {t}", False),  # PostgreSQL prints a char(n) padded; both warehouses do not
    ("SELECT id, c::text FROM {t}", True),
    ("SELECT id, length(c) FROM {t}", True),
    ("SELECT id, c || '|' FROM {t}", True),
    ("SELECT id FROM {t} WHERE c = 'a'", True),
    ("SELECT id FROM {t} WHERE c = 'é a'", True),
    ("SELECT id FROM {t} WHERE c IN ('a', ' a', '')", True),
    ("SELECT id FROM {t} WHERE c < 'a'", True),
    ("SELECT c::text, count(*) FROM {t} GROUP BY c", True),
    ("SELECT count(DISTINCT c) FROM {t}", True),
    ("SELECT x.id, y.id FROM {t} x JOIN {t} y ON x.c = y.c", True),
    # PostgreSQL compares a char(n) with a varchar as char(n), ignoring the varchar's trailing blanks
    ("SELECT x.id, y.id FROM {t} x JOIN {t} y ON x.c = y.v", False),
    ("SELECT x.id, y.id FROM {t} x JOIN {t} y ON x.c = rtrim(y.v, ' ')", True),
    ("SELECT id FROM {t} WHERE c LIKE 'a%'", True),
    ("SELECT id FROM {t} WHERE c LIKE '%a'", False),  # PostgreSQL matches patterns against the padding
    ("SELECT id FROM {t} WHERE c IS NULL", True),
]


def _project(root: Path, upstream: str, warehouse: str) -> Path:
    root.mkdir(parents=True)
    settings = {
        "name": "chars",
        "sources": {"up": {"type": "postgres", "dsn": upstream, "include": ["public.*"]}},
        "environments": {
            "duck": {"type": "duckdb", "dsn": "wh.duckdb"},
            "pg": {"type": "postgres", "dsn": warehouse},
        },
        "default_environment": "duck",
    }
    (root / "conveyor.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    return root


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=repr)


def test_char_columns_answer_the_same_on_every_warehouse(
    tmp_path: Path, pgwh_dsn: str, sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    sql("CREATE TABLE public.t (id integer PRIMARY KEY, c char(5), v varchar(5))")
    sql("CREATE TABLE public.nation (n_nationkey integer PRIMARY KEY, n_name char(25) NOT NULL)")
    for i, value in enumerate([*VALUES, None]):
        sql("INSERT INTO public.t VALUES (%s, %s, %s)", (i, value, value))
    sql("INSERT INTO public.nation VALUES (7, 'GERMANY'), (8, 'FRANCE')")
    root = _project(tmp_path / "p", pgwh_dsn, pgwh_dsn)
    report = bootstrap(Project.load(root))
    assert report.ok
    assert yaml.safe_load((root / "schemas/up/t.yaml").read_text())["columns"][1]["type"] == "char(5)"
    for env in ("duck", "pg"):
        outcome = api.run(Project.load(root), env=env)
        assert outcome.ok, (env, outcome)

    with duckdb.connect(str(root / "wh.duckdb"), read_only=True) as duck, psycopg.connect(pgwh_dsn) as pg:
        # the example: TPC-H queries over char columns find their rows everywhere
        query = "SELECT n_nationkey FROM up.nation WHERE n_name = 'GERMANY'"
        assert duck.execute(query).fetchall() == pg.execute(query).fetchall() == [(7,)]
        for text, same_as_upstream in QUERIES:
            on_duck = _sorted(duck.execute(text.format(t="up.t")).fetchall())
            on_pg = _sorted(pg.execute(text.format(t="up.t").encode()).fetchall())
            assert on_duck == on_pg, text
            if same_as_upstream:
                assert on_pg == _sorted(pg.execute(text.format(t="public.t").encode()).fetchall()), text
    # the lake keeps the padded value
    lake = Project.load(root).path("lake")
    assert any(lake.rglob("*.parquet"))


def test_char_read_keeps_the_padding_in_the_lake(pgwh_dsn: str, sql: Callable[..., list[tuple[Any, ...]]]) -> None:
    from conveyor.sources.base import ReadRequest
    from conveyor.sources.postgres import PostgresSource

    sql("CREATE TABLE public.p (id integer, c char(4))")
    sql("INSERT INTO public.p VALUES (1, 'ab'), (2, '')")
    with PostgresSource("up", pgwh_dsn) as source:
        (column,) = [c for c in source.describe("public", "p").columns if c.name == "c"]
        request = ReadRequest("public", "p", (("c", column.type),), order_by=("id",))  # type: ignore[arg-type]
        values = [v for batch in source.read(request) for v in batch.column(0).to_pylist()]
    assert str(column.type) == "char(4)" and values == ["ab  ", "    "]
