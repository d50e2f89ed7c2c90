"""Plain ``validate`` binds every query against the designs in an in-memory DuckDB (no warehouse needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.project import Project
from conveyor.validate import Problem, validate
from conveyor.validate.bindcache import BIND_CACHE_FILE
from conveyor.validate.columns import locate_error

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop"


def _shown(problems: list[Problem]) -> list[str]:
    return [f"{p.severity} {p.code} {p.render()}" for p in problems]


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _errors(root: Path, *selection: str) -> list[tuple[str, str, str]]:
    report = validate(root, selection, sources=False)
    return [(p.code, p.relation or "", str(p.location)) for p in report.problems if p.severity == "error"]


# ------------------------------------------------------------------------------ what binding finds


def test_the_issues_typo_is_found_without_a_warehouse(case_project: Callable[[str], Path]) -> None:
    """Issue 10, item 7: a query selecting customer_idd was "OK ... no problems"."""
    root = case_project("_base")
    typo = "SELECT name,\n       customer_idd AS customer_id\nFROM customer_orders\n"
    _write(root, {"schemas/mart/big_customers.sql": typo})
    report = validate(root, sources=False)
    assert [(p.code, str(p.location)) for p in report.problems] == [
        ("bind-failed", "schemas/mart/big_customers.sql:2:8")
    ], _shown(report.problems)
    assert report.checks == ["project", "designs", "dependencies", "sql"]
    assert 'Referenced column "customer_idd" not found' in report.problems[0].message
    assert report.exit_code == 2


def test_downstream_of_a_failed_ctas_binds_against_its_design(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    path = root / "schemas/mart/customer_orders.sql"
    path.write_text(path.read_text().replace("c.name,", "c.nam AS name,"), encoding="utf-8")
    # big_customers reads customer_orders: it is bound against a stand-in with the design's columns
    assert _errors(root) == [("bind-failed", "mart.customer_orders", "schemas/mart/customer_orders.sql:2:10")]
    # only the selection's problems are reported, though its upstream is bound
    assert _errors(root, "mart.big_customers") == []
    # a relation with no typed design has no stand-in: what reads it is noted, not failed
    _write(
        root,
        {
            "schemas/mart/late.yaml": "name: mart.late\nkind: view\n",
            "schemas/mart/later.yaml": "name: mart.later\nkind: view\n",
            "schemas/mart/late.sql": "SELECT nope FROM mart.order_days\n",
            "schemas/mart/later.sql": "SELECT * FROM mart.late\n",
        },
    )
    report = validate(root, ["mart.late", "mart.later"], sources=False)
    assert [(p.code, p.relation, p.severity) for p in report.problems] == [
        ("bind-failed", "mart.late", "error"),
        ("not-bound", "mart.later", "info"),
    ], _shown(report.problems)


def test_a_typed_ctas_is_read_with_the_designs_types(case_project: Callable[[str], Path]) -> None:
    """A load inserts a typed CTAS into its design's types, so what reads it sees those, not the query's."""
    root = case_project("_base")
    _write(
        root,
        {
            "schemas/mart/order_days.yaml": "name: mart.order_days\nkind: ctas\ncolumns:\n  - name: day\n"
            "    type: date\n  - name: orders\n    type: double\n",
            "schemas/mart/odd_days.yaml": "name: mart.odd_days\nkind: view\n",
            "schemas/mart/odd_days.sql": "SELECT day FROM mart.order_days WHERE orders & 1 = 1\n",
        },
    )
    # count(*) is a BIGINT, which a double column holds; but "&" takes no double
    assert _errors(root) == [("bind-failed", "mart.odd_days", "schemas/mart/odd_days.sql:1:39")]


def test_unqualified_names_are_found_through_the_search_path(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    settings_file = root / "conveyor.yaml"
    settings_file.write_text(settings_file.read_text() + "defaults:\n  search_path: [mart]\n", encoding="utf-8")
    _write(
        root,
        {
            "schemas/report/top.yaml": "name: report.top\nkind: view\n",
            "schemas/report/top.sql": "SELECT b.name FROM big_customers AS b\n"
            "JOIN customer_orders USING (customer_id)\n",
        },
    )
    assert _errors(root) == []
    _write(root, {"schemas/report/top.sql": "SELECT name, orders FROM big_customers\n"})
    assert _errors(root) == [("bind-failed", "report.top", "schemas/report/top.sql:1:14")]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT day FROM read_csv('{data}')",
        "SELECT * FROM '{data}'",
        "SELECT ST_Area(NULL) AS day",  # the spatial extension's
        "SELECT * FROM sqlite_scan('{data}', 't')",  # the sqlite extension's
    ],
)
def test_queries_that_read_files_or_need_extensions_are_noted_not_failed(
    sql: str, case_project: Callable[[str], Path], tmp_path: Path
) -> None:
    data = tmp_path / "calendar.csv"
    data.write_text("day\n2024-01-01\n", encoding="utf-8")
    root = case_project("_base")
    _write(root, {"schemas/mart/order_days.sql": sql.format(data=data) + "\n"})
    report = validate(root, sources=False)
    assert [(p.code, p.severity) for p in report.problems] == [("not-bound", "info")], _shown(report.problems)
    assert "reads files or needs an extension" in report.problems[0].message
    assert report.ok


def test_skip_sql_compares_select_lists_only(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _write(root, {"schemas/mart/big_customers.sql": "SELECT customer_idd AS customer_id, name FROM customer_orders\n"})
    report = validate(root, sql=False, sources=False)
    assert report.problems == []
    assert "--skip-sql" in report.notes[0]


# ------------------------------------------------------------------------------ positions


@settings(max_examples=60, deadline=None)
@given(
    before=st.lists(st.sampled_from(["a", "b", "c", "t.a", "long_column_name", "b + 1", "lower(c)"]), max_size=25),
    after=st.lists(st.sampled_from(["a", "b", "t.c", "a * 2"]), max_size=25),
    gaps=st.lists(st.sampled_from([" ", "  ", "\n", "\n    ", "\t", "\n\t\t"]), min_size=60, max_size=60),
    typo=st.sampled_from(["bb", "t.aa", "nope(a)", "lowr(c)"]),
)
def test_the_place_duckdb_points_at_is_the_place_in_the_file(
    before: list[str], after: list[str], gaps: list[str], typo: str
) -> None:
    """Lines of any length (DuckDB shows a window of long ones), tabs and newlines: the position is exact."""
    items = [*before, typo, *after]
    sql = "SELECT" + gaps[0]
    for index, item in enumerate(items):
        sql += item + ("," + gaps[index + 1] if index < len(items) - 1 else "")
    sql += gaps[-1] + "FROM t\n"
    start = _item_start(sql, items, len(before))
    line = sql.count("\n", 0, start) + 1
    column = start - (sql.rfind("\n", 0, start) + 1) + 1
    if typo.startswith("t."):
        column += 2  # DuckDB names the column, not the table
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a INTEGER, b INTEGER, c VARCHAR, long_column_name INTEGER)")
    with pytest.raises(duckdb.Error) as info:
        con.execute("EXPLAIN " + sql)
    relation = _FakeRelation(sql)
    where = locate_error(relation.project, relation.relation, str(info.value), sql, len("EXPLAIN "))
    assert where is not None
    assert (where.line, where.column) == (line, column), (sql, str(info.value))


def _item_start(sql: str, items: list[str], wanted: int) -> int:
    """Offset of item ``wanted`` in the select list (items are separated by commas)."""
    offset = len("SELECT")
    for index, item in enumerate(items):
        offset = sql.index(item, offset)
        if index == wanted:
            return offset
        offset = sql.index(",", offset + len(item)) + 1
    raise AssertionError("not found")


class _FakeRelation:
    """A one-relation project on disk whose query is ``sql`` (for locate_error, which reads the project root)."""

    def __init__(self, sql: str):
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="conveyor-bind-"))
        _write(
            root,
            {
                "conveyor.yaml": "name: x\nenvironments:\n  dev: {type: duckdb, dsn: w.duckdb}\n",
                "schemas/m/t.yaml": "name: m.t\nkind: view\n",
                "schemas/m/q.yaml": "name: m.q\nkind: view\n",
                "schemas/m/q.sql": sql,
            },
        )
        (root / "schemas/m/t.sql").write_text("SELECT 1 AS a\n", encoding="utf-8")
        self.project = Project.collect(root, cache=False).project
        assert self.project is not None
        self.relation = self.project.relations["m.q"]
        shutil.rmtree(root)


# ------------------------------------------------------------------------------ PostgreSQL projects

PG_SETTINGS = """\
name: pgcases
sources:
  shop:
    type: sqlite
    dsn: upstream.db
environments:
  pg:
    type: postgres
    dsn: postgresql://nobody@127.0.0.1:1/none
"""


def test_postgresql_queries_bind_after_translation(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _write(root, {"conveyor.yaml": PG_SETTINGS})
    valid = (
        "SELECT c.id AS CustomerId, to_char(c.created_at, 'YYYY') AS year, c.name ILIKE 'a%' AS a,\n"
        "       c.name ~ '^x' AS x, string_agg(o.note, ',') AS notes, date_part('year', now()) AS yr,\n"
        "       (now() - interval '1 day')::date AS yesterday, count(*)::int AS n\n"
        "FROM shop.customers AS c JOIN shop.orders AS o ON o.customer_id = c.id\n"
        "GROUP BY c.id, c.name, c.created_at\n"
    )
    _write(
        root,
        {
            "schemas/mart/pg.yaml": "name: mart.pg\nkind: ctas\ncolumns:\n"
            + "".join(f"  - name: {n}\n" for n in ("customerid", "year", "a", "x", "notes", "yr", "yesterday", "n")),
            "schemas/mart/pg.sql": valid,
        },
    )
    report = validate(root, sources=False)
    assert report.problems == [], _shown(report.problems)
    # an unknown column is an error, found where the query names it
    _write(root, {"schemas/mart/pg.sql": valid.replace("c.name ~", "c.nme ~")})
    assert _errors(root) == [("bind-failed", "mart.pg", "schemas/mart/pg.sql:2:10")]
    # a function DuckDB does not know may well be PostgreSQL's own: a note, and the select list is still compared
    _write(root, {"schemas/mart/pg.sql": valid.replace("count(*)::int AS n", "pg_current_wal_lsn() AS m")})
    report = validate(root, sources=False)
    assert [(p.code, p.severity) for p in report.problems] == [
        ("not-bound", "info"),
        ("output-column-missing", "error"),
        ("output-column-extra", "error"),
    ], _shown(report.problems)


def test_the_example_validates_clean_on_both_dialects(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("lake", "warehouse", ".conveyor", "upstream"))
    assert validate(root, sources=False).problems == []
    settings_file = root / "conveyor.yaml"
    text = settings_file.read_text(encoding="utf-8")
    variant = "  pg:\n    type: postgres\n    dsn: postgresql://nobody@127.0.0.1:1/none\n"
    text = text.replace("environments:\n", "environments:\n" + variant, 1)
    settings_file.write_text(text.replace("default_environment: development", "default_environment: pg"), "utf-8")
    assert Project.load(root).dialect == "postgres"
    assert [p for p in validate(root, sources=False).problems if p.severity != "info"] == []


def test_the_postgresql_warehouse_tests_project_validates_clean(tmp_path: Path) -> None:
    """The project tests/warehouse/postgres builds in PostgreSQL (its default environment) binds without a problem."""
    from tests.warehouse.postgres.conftest import CONVEYOR_YAML, DESIGNS

    root = tmp_path / "pgproj"
    _write(root, {"conveyor.yaml": CONVEYOR_YAML.replace("{pg_extra}", "")})
    _write(root, {f"schemas/{name}": text for name, text in DESIGNS.items()})
    assert Project.load(root).dialect == "postgres"
    report = validate(root, sources=False)
    assert report.problems == [], _shown(report.problems)


# ------------------------------------------------------------------------------ the bind cache

PROBE = """\
import json, sys
from conveyor.validate import validate
report = validate(sys.argv[1], sources=False)
print(json.dumps({"duckdb": "duckdb" in sys.modules, "problems": [p.to_json() for p in report.problems]}))
"""


def _probe(root: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE, str(root)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _keys(root: Path) -> set[str]:
    return set(json.loads((root / BIND_CACHE_FILE).read_text())["entries"])


def test_a_second_validate_binds_nothing_and_reports_the_same(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _write(root, {"schemas/mart/big_customers.sql": "SELECT customer_idd AS customer_id, name FROM customer_orders\n"})
    first, second = _probe(root), _probe(root)
    assert first["duckdb"] is True and second["duckdb"] is False  # nothing changed: DuckDB is not even imported
    assert second["problems"] == first["problems"]
    assert [p["code"] for p in first["problems"]] == ["bind-failed"]  # type: ignore[attr-defined, index]


def test_a_change_rebinds_what_it_changes_and_nothing_else(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    assert _errors(root) == []
    keys = _keys(root)
    # the same columns: only the edited query is bound again
    path = root / "schemas/mart/customer_orders.sql"
    path.write_text(path.read_text() + "-- a comment\n", encoding="utf-8")
    assert _errors(root) == []
    assert len(_keys(root) - keys) == 1
    # a source column renamed in its design: the query reading it is bound again, and fails
    keys = _keys(root)
    design = root / "schemas/shop/customers.yaml"
    design.write_text(design.read_text().replace("name: name", "name: full_name"), encoding="utf-8")
    assert _errors(root) == [("bind-failed", "mart.customer_orders", "schemas/mart/customer_orders.sql:7:18")]
    assert len(_keys(root) - keys) == 1  # customer_orders; what reads it is bound against its stand-in, unchanged


def test_a_selection_keeps_the_entries_of_the_others(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    assert _errors(root) == []
    keys = _keys(root)
    path = root / "schemas/mart/order_days.sql"
    path.write_text(path.read_text() + "-- changed\n", encoding="utf-8")
    assert _errors(root, "mart.order_days") == []
    assert len(_keys(root) - keys) == 1 and len(keys - _keys(root)) == 0
    assert _errors(root) == []
    assert len(keys - _keys(root)) == 1  # a whole run keeps only what it used


def test_no_cache_neither_reads_nor_writes_and_a_bad_cache_is_ignored(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _write(root, {"schemas/mart/big_customers.sql": "SELECT customer_idd AS customer_id, name FROM customer_orders\n"})
    assert [p.code for p in validate(root, sources=False, cache=False).problems] == ["bind-failed"]
    assert not (root / BIND_CACHE_FILE).exists()
    (root / BIND_CACHE_FILE).parent.mkdir(parents=True, exist_ok=True)
    for junk in ("{not json", '{"key": "other", "entries": {}}', "[]"):
        (root / BIND_CACHE_FILE).write_text(junk, encoding="utf-8")
        assert [p.code for p in validate(root, sources=False).problems] == ["bind-failed"]
    text = (root / BIND_CACHE_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    for entry in data["entries"].values():
        entry["problems"] = "garbage"
    (root / BIND_CACHE_FILE).write_text(json.dumps(data), encoding="utf-8")
    assert [p.code for p in validate(root, sources=False).problems] == ["bind-failed"]
