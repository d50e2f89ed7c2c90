"""validate(): every problem at once, grouped and located; JSON shape; external tables; no cascades."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import Field

from conveyor import project as project_module
from conveyor.config.settings import ProjectSettings
from conveyor.errors import ProjectError
from conveyor.project import Project, is_external, select_names
from conveyor.validate import CODES, Problem, validate
from conveyor.validate.problems import Report, problem

TEN_DEFECTS = {
    # load: a design that does not parse (read by customer_orders: no "missing dependency" follows)
    "schemas/shop/orders.yaml": "name: shop.orders\ncolumns: [\n",
    # load: a SQL file without a design
    "schemas/mart/stray.sql": "SELECT 1 AS x\n",
    # load: a cycle
    "schemas/mart/a.yaml": "name: mart.a\nkind: view\n",
    "schemas/mart/a.sql": "SELECT * FROM mart.b\n",
    "schemas/mart/b.yaml": "name: mart.b\nkind: view\n",
    "schemas/mart/b.sql": "SELECT * FROM mart.a\n",
    # load: SQL that does not parse
    "schemas/mart/order_days.sql": "SELECT count(* FROM shop.orders\n",
    # designs: a view column with a type; a key on a missing column
    "schemas/mart/big_customers.yaml": "name: mart.big_customers\nkind: view\ncolumns:\n  - name: customer_id\n"
    "    type: bigint\n  - name: name\n",
    "schemas/mart/customer_orders.yaml": "name: mart.customer_orders\nkind: ctas\ncolumns:\n"
    "  - name: customer_id\n    type: bigint\n  - name: name\n    type: text\n  - name: orders\n    type: bigint\n"
    "  - name: revenue\n    type: decimal(38,2)\nconstraints:\n  primary_key: [id]\n",
    # designs: a source table with depends_on, and an identity column that may be NULL
    "schemas/shop/customers.yaml": "name: shop.customers\ncolumns:\n  - name: id\n    type: bigint\n"
    "    not_null: true\n  - name: name\n    type: text\n    not_null: true\n  - name: email\n    type: text\n"
    "    identity: true\n  - name: active\n    type: boolean\n  - name: created_at\n    type: timestamptz\n"
    "  - name: phone\n    type: text\nconstraints:\n  primary_key: [id]\ndepends_on: [mart.order_days]\n",
}
TEN_CODES = [
    "yaml-syntax",
    "sql-without-design",
    "cycle",
    "sql-parse",
    "view-column",
    "unknown-column",
    "source-depends-on",
    "identity-nullable",
    "upstream-column-removed",  # customers.phone is not upstream
    "unneeded-dependency",
]


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_ten_problems_are_all_reported(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _write(root, TEN_DEFECTS)
    (root / "schemas/mart/big_customers.yaml").write_text(
        TEN_DEFECTS["schemas/mart/big_customers.yaml"] + "depends_on: [shop.customers]\n", encoding="utf-8"
    )
    report = validate(root)
    assert sorted(p.code for p in report.problems) == sorted(TEN_CODES), [p.render() for p in report.problems]
    assert all(p.location is not None for p in report.problems)
    assert report.exit_code == 2
    # the same project through Project.load: the load problems, nothing more
    with pytest.raises(ProjectError) as info:
        Project.load(root)
    assert sorted(p.code for p in info.value.problems) == ["cycle", "sql-parse", "sql-without-design", "yaml-syntax"]


def test_a_broken_design_causes_no_missing_dependency(make_project: Callable[..., Path]) -> None:
    root = make_project(designs={"shop/orders.yaml": "name: shop.orders\ncolumns:\n  - nam: id\n"})
    with pytest.raises(ProjectError) as info:
        Project.load(root)
    assert sorted(p.code for p in info.value.problems) == ["missing-key", "unknown-key"]
    result = Project.collect(root)
    assert result.project is not None
    assert set(result.project.broken) == {"shop.orders"}
    assert result.project.relations["mart.customer_totals"].dependencies == ["shop.customers"]


def test_problems_are_grouped_by_relation_in_execution_order(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _write(
        root,
        {
            "schemas/mart/big_customers.yaml": "name: mart.big_customers\nkind: view\ndepends_on: [shop.orders]\n",
            "schemas/mart/order_days.yaml": "name: mart.order_days\nkind: ctas\ndepends_on: [shop.customers]\n",
            "schemas/shop/customers.yaml": (root / "schemas/shop/customers.yaml").read_text() + "depends_on: []\n",
            "conveyor.yaml": (root / "conveyor.yaml").read_text() + "required: [tag:nope]\n",
        },
    )
    report = validate(root, sources=False)
    groups = report.by_relation()
    assert list(groups) == [None, "mart.order_days", "mart.big_customers"]
    assert [p.code for p in groups[None]] == ["bad-required"]
    assert report.exit_code == 2


def test_the_json_shape(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    _write(root, {"schemas/mart/order_days.yaml": "name: mart.order_days\nkind: ctas\ndepends_on: [shop.customers]\n"})
    data = json.loads(json.dumps(validate(root).to_json()))
    assert set(data) == {"ok", "relations", "problems", "errors", "warnings", "checks", "notes", "seconds"}
    assert data["ok"] is True and data["errors"] == 0 and data["warnings"] == 1 and data["relations"] == 5
    assert data["checks"] == ["project", "designs", "dependencies", "sql", "sources"]
    assert data["problems"] == [
        {
            "code": "unneeded-dependency",
            "severity": "warning",
            "check": "dependencies",
            "relation": "mart.order_days",
            "file": "schemas/mart/order_days.yaml",
            "line": 3,
            "column": None,
            "message": '"mart.order_days" lists "shop.customers" in depends_on, but its SQL does not read it.',
            "hint": "Remove it, unless the query reads it in a way the SQL cannot show (e.g. through a function); "
            "then keep it and ignore this warning.",
            "details": {},
        }
    ]


def test_a_folder_without_a_project(tmp_path: Path) -> None:
    report = validate(tmp_path)
    assert [p.code for p in report.problems] == ["no-project"]
    assert report.exit_code == 2


def test_broken_settings_are_reported_alone(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    (root / "conveyor.yaml").write_text("name: x\nsources: {a: {type: nosql, dsn: x}}\nbogus: 1\n", encoding="utf-8")
    report = validate(root)
    assert sorted(p.code for p in report.problems) == ["invalid-value", "unknown-key"]
    assert {str(p.location.path) for p in report.problems if p.location} == {"conveyor.yaml"}


def test_the_codes_are_documented() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "validate.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in text.splitlines() if line.startswith("| `")}
    assert set(CODES) <= set(rows), sorted(set(CODES) - set(rows))
    for code, info in CODES.items():
        assert f"| {info.severity} |" in rows[code], code


def test_exit_codes_follow_severity() -> None:
    report = Report(problems=[problem("unneeded-dependency", "x"), problem("not-compiled", "y")])
    assert report.ok and report.exit_code == 0
    report.problems.append(problem("cycle", "z"))
    assert not report.ok and report.exit_code == 2
    assert [p.severity for p in report.problems] == ["warning", "info", "error"]
    assert isinstance(report.problems[0], Problem)


# ------------------------------------------------------------------------------- external tables


class _WithExternal(ProjectSettings):
    """The settings with the proposed ``external`` key (until conveyor/config/settings.py has it)."""

    external: list[str] = Field(default_factory=list)


@pytest.fixture
def with_external(monkeypatch: pytest.MonkeyPatch) -> None:
    if "external" not in ProjectSettings.model_fields:
        monkeypatch.setattr(project_module, "ProjectSettings", _WithExternal)


@pytest.mark.usefixtures("with_external")
def test_configured_external_tables_are_not_dependencies(case_project: Callable[[str], Path]) -> None:
    root = case_project("_base")
    sql = "SELECT o.id, cal.week\nFROM shop.orders AS o\nJOIN legacy.calendar AS cal ON cal.day = o.updated_at\n"
    _write(root, {"schemas/mart/order_days.sql": sql})
    assert [p.code for p in validate(root, sources=False).problems] == ["external-dependency"]
    settings = root / "conveyor.yaml"
    settings.write_text(settings.read_text() + "external: ['legacy.*']\n", encoding="utf-8")
    report = validate(root, sources=False)
    assert [(p.code, p.severity) for p in report.problems] == [("not-bound", "info")]
    assert "it reads legacy.calendar, which is outside the project" in report.problems[0].message
    relation = Project.load(root).relations["mart.order_days"]
    assert relation.dependencies == ["shop.orders"]
    assert relation.external == ["legacy.calendar"]
    report = validate(root, sources=False, warehouse="dev")
    assert [(p.code, p.severity) for p in report.problems] == [("not-compiled", "info")]


def test_external_patterns() -> None:
    assert is_external("legacy.calendar", ["legacy.*"])
    assert is_external("legacy.calendar", ["legacy"])  # a bare word is a schema
    assert is_external("legacy.calendar", ["*.calendar"])
    assert not is_external("legacy.calendar", ["legacy.cal"])
    assert not is_external("legacy.calendar", [])


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("SELECT a, b AS c, t.d FROM t", ["a", "c", "d"]),
        ('SELECT "Mixed" FROM t', ["Mixed"]),
        ("SELECT * FROM t", None),
        ("SELECT t.*, a FROM t", None),
        ("SELECT count(*) FROM t", None),
        ("SELECT a AS x FROM t UNION ALL SELECT b FROM u", ["x"]),
        ("WITH q AS (SELECT 1 AS one) SELECT one FROM q", ["one"]),
        ("VALUES (1)", None),
    ],
)
def test_select_names(sql: str, names: list[str] | None) -> None:
    from conveyor.graph.sqldeps import parse_sql

    assert select_names(parse_sql(sql)) == names
